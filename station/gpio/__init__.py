"""The Raspberry Pi's GPIO through gpiozero: an IR illuminator and a PIR sensor.

* :mod:`station.gpio.pins` opens a pin for a config key (errors name the key).
* :mod:`station.gpio.ir` switches the IR light by the light level of the camera's own
  frames (with hysteresis) or by the sun.
* :mod:`station.gpio.pir` reads a PIR sensor, wired or simulated by a synthetic scene.

gpiozero is a Raspberry Pi OS package (``python3-gpiozero``) and an optional extra here
(``pip install .[gpio]``); it is imported only when a pin is configured. Tests use its
``MockFactory`` pins (``GPIOZERO_PIN_FACTORY=mock``).
"""
