"""Operational policies the assets share: step retries and freshness. Defined once here so the
assets, deploy/README.md and the tests agree on one value each."""

import datetime as dt

import dagster as dg

# For the assets that read the landing zone or write the lake and the releases folder: what fails
# there transiently is I/O (an object store throttling, a network mount blinking, a Delta commit
# conflict outlasting DeltaStore's own retries), and each of those assets is idempotent (a batch's
# rows are replaced, small tables merge on their keys, a release is a new immutable version), so
# running the step again never duplicates anything. Exponential backoff gives a struggling store
# room (about 10 s, 30 s, 70 s); the +/- jitter keeps parallel batch runs that failed together from
# retrying together. Failures that would only repeat (a refused release, a changed secret key)
# raise dg.Failure(allow_retries=False) and skip these retries.
IO_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL,
                                 jitter=dg.Jitter.PLUS_MINUS)

# refresh_programme runs daily at 06:30 Asia/Taipei (sensors/consent.py), and after every batch and
# consent change. 26 hours is one day plus two hours for a slow or queued run: a progress table
# older than that means the daily refresh failed or never ran, and the programme office's figures
# are stale.
PROGRESS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26))
