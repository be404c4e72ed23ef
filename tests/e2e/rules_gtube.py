"""The GTUBE test string (SpamAssassin's Generic Test for Unsolicited Bulk Email)."""

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
