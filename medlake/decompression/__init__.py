"""Bounded decompression: every decoder medlake runs on a hospital's bytes is held to one limit.

Two checks, both needed: a size declared before decoding (image and volume headers, zip
directories) is compared with the limit first, and the decompressed stream is then counted as it
comes, so a file that lies about its size is stopped too. What passes the limit raises
DecompressionLimit (reason code `decompression_limit`); each stage turns it into its own
quarantine or problem row. The identifier checker has its own copy of these rules
(medlake/checker/limits.py): it shares no code with ingestion or de-identification.
"""

from medlake.decompression.limits import ENV, DecompressionLimit, check_declared, max_decoded_bytes, parse_limit

__all__ = ["ENV", "DecompressionLimit", "check_declared", "max_decoded_bytes", "parse_limit"]
