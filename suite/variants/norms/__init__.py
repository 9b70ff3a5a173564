"""One file per normalization variant; each registers itself with ``@register_norm``."""
