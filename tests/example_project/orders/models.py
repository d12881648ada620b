# mypy: ignore-errors
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    total_cents = models.IntegerField()
    reference = models.CharField(max_length=20, unique=True)
