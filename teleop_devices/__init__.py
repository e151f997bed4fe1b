"""Human and simulated-human input devices; each returns a DeviceReading (see dagger.core).

Importing this package sets SDL's environment before pygame is imported anywhere: a gamepad keeps
working when the operator window is not focused, and pygame prints no banner.
"""

import os

os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
