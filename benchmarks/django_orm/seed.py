"""Create the table and its rows: ``python -m benchmarks.django_orm.seed``."""

from __future__ import annotations

import os

import django
from django.core.management import call_command

from benchmarks.django_orm import ROWS, SETTINGS


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    from benchmarks.django_orm.models import Item  # noqa: PLC0415  # needs setup()

    Item.objects.all().delete()
    Item.objects.bulk_create(Item(pk=pk, name=f"item {pk}") for pk in range(1, ROWS + 1))


if __name__ == "__main__":
    main()
