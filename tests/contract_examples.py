"""The contract's worked examples for running totals (section 4, rule 6), shared by the pure
unit tests and the end-to-end test through MQTT: each case is a list of messages (each a list of
(time of day, register kWh); the late reading in its own message) and the expected windows."""

RUNNING_TOTALS = [
    ([[("00:00:00", 1000), ("00:30:00", 1006)]], {"00:00:00": 3, "00:15:00": 3}),
    ([[("00:00:00", 1000), ("00:30:00", 1006)], [("00:15:00", 1001)]],
     {"00:00:00": 1, "00:15:00": 5}),
    ([[("00:00:00", 1000), ("00:15:00", 1004), ("00:30:00", 2), ("00:45:00", 5)]],
     {"00:00:00": 4, "00:15:00": 2, "00:30:00": 3}),
    ([[("00:00:00", 1000), ("00:15:00", 999.5), ("00:30:00", 1001)]],
     {"00:00:00": 0, "00:15:00": 1.5}),
    ([[("00:00:00", 1000), ("01:00:00", 1004)]],
     {"00:00:00": 1, "00:15:00": 1, "00:30:00": 1, "00:45:00": 1}),
]
