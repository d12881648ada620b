from __future__ import annotations

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2)


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    price_cents = models.IntegerField()
    year = models.IntegerField()


class Plan(models.Model):
    name = models.CharField(max_length=50)
    monthly_cents = models.IntegerField()


class Account(models.Model):
    name = models.CharField(max_length=100)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    seats = models.IntegerField()


class Order(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="orders")
    book = models.ForeignKey(Book, on_delete=models.PROTECT)
    quantity = models.IntegerField()
    status = models.CharField(max_length=20)
