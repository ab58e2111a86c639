"""The project's serializer base: DRF's `Serializer`, with its fields built once per class.

DRF builds a serializer's fields anew for every instance: `Serializer.fields` deep-copies the declared
fields, which runs every field's `__init__` again (and a nested serializer's, recursively). Our
serializers are declared once and never change their fields, so that work is the same on every
request: a checkout and its payment spent about 10 % of the web process's CPU there (py-spy,
docs/REPORT.md), more than on any SQL statement of theirs.

`Serializer` here builds the fields once per class, bound to one prototype instance of it, and every
instance of the class shares them. That is safe because what a field does in `to_representation`
and `run_validation` reads only its own configuration, and the request's values travel as arguments
(the instance or data; the errors and the validated data stay on the instance that was called). Two
things would read the *prototype* instead of the real serializer, so they keep DRF's per-instance
fields: a `context` (a field or a `SerializerMethodField` may read it) and `partial=True`, both
looked up at the root, so a nested serializer follows its root. A `SerializerMethodField`'s method
runs on the prototype, so it must use only its argument (as every one of ours does).
`common/tests/test_serializers.py` checks that each serializer of the project derives from this one
and that shared and per-instance fields give the same answers and the same errors.
"""

from __future__ import annotations

from django.utils.functional import cached_property
from rest_framework import serializers

_build_fields = serializers.Serializer.fields.func  # DRF's own: deep-copy the declared fields and bind them


class Serializer(serializers.Serializer):
    @cached_property
    def fields(self):
        root = self.root
        if root._context or getattr(root, "partial", False):
            return _build_fields(self)
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:  # the first instance of this class; two racing threads build the same thing
            shared = _build_fields(cls())
            cls._shared_fields = shared
        return shared
