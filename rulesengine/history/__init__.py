"""Result history: each evaluation's values and statuses, kept in the store.

:mod:`rulesengine.history.record` writes a run's results (inside the alert-state
transaction) and applies retention; :mod:`rulesengine.history.query` reads them
back for ``rulesengine history``, the daemon and ``change`` thresholds;
:mod:`rulesengine.history.render` prints them as text, JSON or CSV.
"""
