"""The INA219 battery monitor: the datasheet's register formats (SBOS448, section 8.6), its
calibration arithmetic, and the driver on a fake I2C bus that answers like the chip."""

from __future__ import annotations

import inspect
import sys

import pytest

from station.power.ina219 import (CONFIG, INA219, REG_CONFIG, MonitorError, bus_volts, calibration,
                                  current_from_register, open_ina219, power_from_register, shunt_volts, swap16)
from tests.power_fakes import FakeINA219Bus


# -- the register formats ---------------------------------------------------------------------
def test_the_shunt_register_is_twos_complement_at_10_microvolts():
    assert shunt_volts(0x7D00) == pytest.approx(0.320)      # +320 mV: full scale at gain /8
    assert shunt_volts(0x8300) == pytest.approx(-0.320)     # -320 mV
    assert shunt_volts(0x0001) == pytest.approx(10e-6)
    assert shunt_volts(0xFFFF) == pytest.approx(-10e-6)
    assert shunt_volts(0x0000) == 0


def test_the_bus_register_is_bits_15_to_3_at_4_millivolts_and_its_flags_are_not_volts():
    assert bus_volts(3000 << 3) == pytest.approx(12.0)
    assert bus_volts((3000 << 3) | 0b11) == pytest.approx(12.0), "CNVR and OVF are flags"
    assert bus_volts(0xFFF8) == pytest.approx(32.764)       # 8191 steps: the 32 V range's top


def test_the_datasheets_calibration_example_10_amps_through_2_milliohms_at_12_volts():
    # Current_LSB 1 mA and a 2 mOhm shunt: Cal = trunc(0.04096 / (0.001 * 0.002)) = 20480;
    # 20 mV across the shunt (register 2000) gives current register 2000 * 20480 / 4096 = 10000,
    # 10 A; at 12 V (bus register 3000) the power register is 10000 * 3000 / 5000 = 6000, 120 W.
    assert calibration(0.001, 0.002) == 20480
    assert current_from_register(10000, 0.001) == pytest.approx(10.0)
    assert power_from_register(6000, 0.001) == pytest.approx(120.0)
    assert calibration(100e-6, 0.1) == 4096                 # 100 uA steps with the common 0.1 ohm
    assert current_from_register(0xFFFF, 0.001) == pytest.approx(-0.001)

    chip = FakeINA219Bus(shunt_ohms=0.002)
    chip.set(12.0 + 0.020, 10.0)
    chip.write_word_data(0x40, 5, swap16(calibration(0.001, 0.002)))
    assert (swap16(chip.read_word_data(0x40, 4)), swap16(chip.read_word_data(0x40, 3))) == (10000, 6000)
    r = INA219(chip, 0x40, shunt_ohms=0.002).read()
    assert (r.current_a, r.power_w, r.bus_v) == (pytest.approx(10.0), pytest.approx(120.0), pytest.approx(12.0)), \
        "the driver's own arithmetic agrees with the chip's"


def test_words_go_over_smbus_byte_swapped():
    assert swap16(0x399F) == 0x9F39 and swap16(swap16(0x1234)) == 0x1234
    chip = FakeINA219Bus()
    assert chip.read_word_data(0x40, REG_CONFIG) == 0x9F39, "the power-on configuration, LSB first"


# -- the driver on a fake bus --------------------------------------------------------------------
def test_a_12_volt_battery_feeding_a_pi_reads_voltage_current_and_power():
    chip = FakeINA219Bus()
    chip.set(12.61, 0.214)
    r = INA219(chip, 0x40, 0.1).read()
    assert swap16(chip.read_word_data(0x40, REG_CONFIG)) == CONFIG == 0x3FFF, "configured on first use"
    assert r.battery_v == pytest.approx(12.61, abs=0.004)
    assert r.current_a == pytest.approx(0.214, abs=1e-4)
    assert r.shunt_v == pytest.approx(0.0214, abs=1e-5)
    assert r.bus_v == pytest.approx(12.61 - 0.0214, abs=0.004)
    assert r.power_w == pytest.approx((12.61 - 0.0214) * 0.214, abs=0.002)


def test_a_brown_out_resets_the_chip_and_the_driver_configures_it_again():
    chip = FakeINA219Bus()
    chip.set(12.0, 0.3)
    monitor = INA219(chip, 0x40, 0.1)
    monitor.read()
    chip.brown_out()
    r = monitor.read()
    assert monitor.resets == 1 and swap16(chip.read_word_data(0x40, REG_CONFIG)) == CONFIG
    assert r.current_a == pytest.approx(0.3, abs=1e-4), "current from the shunt: no calibration to lose"


def test_a_monitor_that_does_not_answer_names_its_bus_and_address():
    chip = FakeINA219Bus()
    chip.present = False
    with pytest.raises(MonitorError) as err:
        INA219(chip, 0x40, 0.1, bus_number=1).read()
    assert "i2c-1 at 0x40" in str(err.value) and "Remote I/O error" in str(err.value)
    assert err.value.key == "power.i2c_address"
    with pytest.raises(MonitorError):
        INA219(FakeINA219Bus(), 0x41, 0.1).read()   # nothing at 0x41


def test_a_current_beyond_the_shunts_full_scale_is_refused_not_reported_as_320_mv():
    chip = FakeINA219Bus()
    chip.set(12.0, 5.0)   # 0.5 V across 0.1 ohm: the register stops at 320 mV
    with pytest.raises(MonitorError) as err:
        INA219(chip, 0x40, 0.1).read()
    assert err.value.key == "power.shunt_ohms" and "full scale" in str(err.value)


def test_the_driver_uses_smbus2_as_smbus2_is():
    smbus2 = pytest.importorskip("smbus2")
    for name in ("read_word_data", "write_word_data"):
        ours = list(inspect.signature(getattr(FakeINA219Bus, name)).parameters)[:-1]
        theirs = list(inspect.signature(getattr(smbus2.SMBus, name)).parameters)[:-1]
        assert ours == theirs, name


def test_an_i2c_bus_that_is_not_switched_on_names_power_i2c_bus():
    pytest.importorskip("smbus2")
    with pytest.raises(MonitorError) as err:
        open_ina219(250, 0x40, 0.1)           # the real smbus2 on a /dev/i2c-250 that is not there
    assert err.value.key == "power.i2c_bus" and "/dev/i2c-250 does not exist" in str(err.value)
    assert "raspi-config" in str(err.value)


def test_without_smbus2_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "smbus2", None)
    with pytest.raises(MonitorError) as err:
        open_ina219(1, 0x40, 0.1)
    assert err.value.key == "power.monitor" and "python3-smbus2" in str(err.value)
