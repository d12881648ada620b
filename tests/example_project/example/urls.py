# mypy: ignore-errors
from django.urls import path
from orders import views

urlpatterns = [
    path("orders/", views.orders),
    path("orders/async/", views.orders_async),
    path("account/", views.account),
    path("upstream/", views.upstream),
]
