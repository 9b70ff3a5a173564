"""One file per norm placement; each registers itself with ``@register_placement``."""
