"""The program on top of the library: the `dagger` command, bench runners, reports, console and dashboard.

Imports run one way: teleop_devices and buffers, then the dagger library, then workers, then this package.
"""
