"""grw-bench: specs, measurement, data, training, evaluation, launching and reporting for Table 1."""
