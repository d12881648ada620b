#!/usr/bin/env python
# mypy: ignore-errors
# (Django is installed in the project's own environments, not in the lab's.)
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
