"""The operator station with a SpaceMouse replayed through the real driver."""

from teleop_devices.fakes import FakeHid, buttons, motion
from teleop_devices.human import SpaceMouseOperator
from teleop_devices.spacemouse import SpaceMouse, SpaceMouseConfig
from teleop_devices.station import OperatorStation


class Clock:
    t = 50.0

    def __call__(self):
        return self.t


def station_with_mouse(*reports):
    hid = FakeHid(list(reports))
    mouse = SpaceMouseOperator(SpaceMouse(hid, SpaceMouseConfig(axis_map=["x", "y"], e_stop_button=2)), act_dim=2)
    sent, events, clock = [], [], Clock()
    station = OperatorStation({0: mouse}, lambda robot, reading: sent.append((robot, "input", reading)),
                              lambda robot, op: sent.append((robot, "lost", op)), events.extend, clock)
    return station, hid, sent, events, clock


def test_readings_go_to_every_robot_the_operator_controls_and_e_stop_reaches_all():
    station, hid, sent, _, clock = station_with_mouse(buttons(1), motion(x=350))
    station.assign(0, 3)
    station.assign(0, 5)
    station.tick()
    assert {(r, m) for r, m, _ in sent} == {(3, "input"), (5, "input")}
    first = sent[0][2]
    assert first["deadman"] and first["action"] == [1.0, 0.0] and first["t_report"] == clock.t
    sent.clear()
    hid.push(buttons(0b101))
    station.tick()
    assert sorted(r for r, _, arg in sent if arg["e_stop"]) == [3, 5]


def test_takeover_input_time_is_kept_per_assignment():
    station, hid, sent, _, clock = station_with_mouse()
    station.assign(0, 1)
    station.tick()
    clock.t = 51.0
    hid.push(buttons(1))
    station.tick()
    clock.t = 52.0
    station.tick()
    assert [arg["t_input"] for _, _, arg in sent] == [50.0, 51.0, 51.0]
    station.release(0, 1)
    station.assign(0, 1)
    clock.t = 53.0
    station.tick()
    assert sent[-1][2]["t_input"] == 53.0


def test_a_lost_device_is_reported_once_and_its_robots_told():
    station, hid, sent, events, _ = station_with_mouse(buttons(1))
    station.assign(0, 2)
    station.tick()
    hid.unplug()
    station.tick()
    station.tick()
    assert [(r, m) for r, m, _ in sent if m == "lost"] == [(2, "lost")]
    assert [e["ev"] for e in events if e["ev"] == "device_lost"] == ["device_lost"]
    assert not station.available(0)
    assert not any(m == "input" and arg["deadman"] is False for _, m, arg in sent)
