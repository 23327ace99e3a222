"""The marker Keras' own test modules use, so tests/keras/test_peer_suite.py can import them."""


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_trainable_backend: Keras' own marker (its test modules)")
