"""Human and simulated-human input devices; each returns a DeviceReading (see dagger.core)."""
