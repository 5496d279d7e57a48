"""GUI side of RTS Fusion: the plugin class and its widgets."""
