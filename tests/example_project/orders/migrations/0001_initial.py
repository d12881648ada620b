# mypy: ignore-errors
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    # Django reads these class attributes as they are (its generated migrations look the same).
    dependencies = []  # noqa: RUF012
    operations = [  # noqa: RUF012
        migrations.CreateModel(
            name="Customer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
            ],
        ),
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("total_cents", models.IntegerField()),
                ("reference", models.CharField(max_length=20, unique=True)),
                (
                    "customer",
                    models.ForeignKey(on_delete=models.deletion.CASCADE, related_name="orders", to="orders.customer"),
                ),
            ],
        ),
    ]
