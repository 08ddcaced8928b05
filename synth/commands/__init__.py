"""The commands layer: one module per console command (``synth-train`` is ``synth.commands.train:main``).

Each module parses its own flags, calls the application modules and turns a SynthError into one line and exit
status 2 (``runner.run_cli``). Nothing outside this package imports it.
"""
