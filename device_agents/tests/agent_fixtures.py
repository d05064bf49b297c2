"""Pytest fixtures for the agent tests, imported explicitly by each test module.

There is deliberately no conftest.py here: the host tests do `from conftest import ...`, and a second
conftest module on sys.path would shadow theirs when the whole repository is collected.
"""
from typing import Iterator

import pytest

from agent_testlib import FIXTURES, LiveServer, conv_relu_bytes


@pytest.fixture(scope="session")
def conv_model() -> bytes:
    """The standard tiny conv model."""
    return conv_relu_bytes()


@pytest.fixture(scope="session")
def tflite_model() -> bytes:
    """A tiny TFLite conv model (regenerate with fixtures/make_conv_tflite.py)."""
    return (FIXTURES / "conv3x8_1x3x16x16.tflite").read_bytes()


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    """A default agent server (estimate sensor) shared by a test module."""
    with LiveServer(sensor_name="estimate") as server:
        yield server


@pytest.fixture
def small_upload_server() -> Iterator[LiveServer]:
    """An agent server whose upload limit is 1 KiB."""
    with LiveServer(sensor_name="estimate", max_upload_bytes=1024) as server:
        yield server
