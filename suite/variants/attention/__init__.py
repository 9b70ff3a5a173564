"""One file per attention variant; each registers itself with ``@register_attention``."""
