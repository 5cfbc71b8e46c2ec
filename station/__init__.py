"""Camera-trap field station: capture, motion, events, classification and the MQTT feed."""

__version__ = "0.1.0"
