"""Fixtures for the cyclegan_hair tests: zoo_cyclegan_hair.testing's, which the core's streaming tests share."""

from zoo_cyclegan_hair import testing

one_thread, zoo_cache, cyclegan_model, tiny_settings, tiny_run, zoo = (
    testing.one_thread, testing.zoo_cache, testing.cyclegan_model, testing.tiny_settings, testing.tiny_run, testing.zoo)
