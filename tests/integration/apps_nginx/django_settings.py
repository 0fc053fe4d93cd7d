"""Settings of the Django app behind nginx (what a real mysite/settings.py would hold)."""

SECRET_KEY = "test-only, not secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "example.com"]
ROOT_URLCONF = "tests.integration.apps_nginx.django_app"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True
