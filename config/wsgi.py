import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
site = get_wsgi_application()  # sets Django up

from common.wsgi import ApiHandler, PathRoutedApplication  # noqa: E402 - after django.setup()

application = PathRoutedApplication(site=site, api=ApiHandler())
