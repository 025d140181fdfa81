"""The schema every composed config is checked against (:func:`check.check_config`)."""
