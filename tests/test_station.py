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


from teleop_devices.reading import DeviceReading  # noqa: E402


class Stamped:
    """A device that stamps its own readings and can go away and come back (as a browser page does)."""

    label = "stamped"

    def __init__(self, t_read):
        self.t_read, self.here = t_read, True

    def reading(self):
        from teleop_devices.reading import DeviceReading

        return DeviceReading(action=None, takeover=True, deadman=True, t_read=self.t_read)

    def present(self):
        return self.here

    def rate_hz(self):
        return 50.0


def test_a_stamped_reading_is_aged_from_when_the_device_read_it():
    sent, clock = [], Clock()
    device = Stamped(t_read=49.5)
    station = OperatorStation({0: device}, lambda robot, reading: sent.append(reading), lambda *a: None,
                              lambda events: None, clock)
    station.assign(0, 1)
    station.tick()
    clock.t = 51.0
    station.tick()  # the device read nothing new: the robot sees the reading age
    assert [(r["t_report"], r["t_input"]) for r in sent] == [(49.5, 49.5), (49.5, 49.5)]


def test_a_device_that_comes_back_is_offered_robots_again():
    sent, events, clock = [], [], Clock()
    device = Stamped(t_read=None)
    station = OperatorStation({0: device}, lambda robot, reading: sent.append(robot),
                              lambda robot, op: sent.append(("lost", robot)), events.extend, clock)
    station.assign(0, 2)
    device.here = False
    station.tick()
    station.tick()
    assert sent == [("lost", 2)] and not station.available(0)
    device.here = True
    station.tick()
    assert station.available(0) and [e["ev"] for e in events if e["ev"] in ("device_lost", "device_back")] == [
        "device_lost", "device_back"]
    station.assign(0, 4)
    station.tick()
    assert sent[1:] == [4]  # the robot it lost went back to the queue, not to it


def test_a_takeover_let_go_before_the_robot_engages_is_timed_from_the_next_press():
    station, hid, sent, _, clock = station_with_mouse()
    station.assign(0, 1)
    for t, report in ((51.0, buttons(1)), (52.0, buttons(0)), (53.0, buttons(1))):
        clock.t = t
        hid.push(report)
        station.tick()
    assert [arg["t_input"] for _, _, arg in sent] == [51.0, 52.0, 53.0]


def test_a_device_that_knows_when_the_takeover_began_is_timed_from_then():
    sent, clock = [], Clock()
    device = Stamped(t_read=49.5)
    device.reading = lambda: DeviceReading(action=None, takeover=True, deadman=True, t_read=49.5, t_engaged=49.2)
    station = OperatorStation({0: device}, lambda robot, reading: sent.append(reading), lambda *a: None,
                              lambda events: None, clock)
    station.assign(0, 1)
    station.tick()
    assert (sent[0]["t_report"], sent[0]["t_input"]) == (49.5, 49.2)


def test_a_report_age_that_is_not_finite_is_none_in_the_health_event():
    station, _, _, events, _ = station_with_mouse()  # no report yet: the SpaceMouse's age is infinite
    station.tick()
    [health] = [e for e in events if e["ev"] == "device_health"]
    assert health["age_s"] is None


def test_a_device_whose_stamped_readings_went_quiet_is_not_offered_robots():
    clock = Clock()
    stamped, mouse = Stamped(t_read=50.0), station_with_mouse()[0].devices[0]  # a SpaceMouse at rest reports nothing
    station = OperatorStation({0: stamped, 1: mouse}, lambda *a: None, lambda *a: None, lambda events: None, clock,
                              max_age_s=0.1)
    station.tick()
    assert station.away() == set()
    clock.t = 50.2  # the page's newest reading is 0.2 s old: a robot offered now would stop at once
    assert station.away() == {0}
    stamped.t_read = 50.2
    station.tick()
    assert station.away() == set()
