"""The ground floor every other package stands on: the error types (:mod:`core.errors`), file writing and the
project cache (:mod:`core.files`), strict loading of TOML inputs into typed records (:mod:`core.config`), the
run-directory contract (:mod:`core.rundir`), units (:mod:`core.units`), the command-line runner (:mod:`core.cli`)
and the plotting set-up (:mod:`core.plotting`). It imports nothing from the project's other packages."""
