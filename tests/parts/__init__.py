"""Real parts for tests: private servers started and stopped by the test that needs them."""
