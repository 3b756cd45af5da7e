"""The regions ViralVidVault tracks (ISO 3166 codes, as YouTube's trending lists name them)."""

REGIONS = ("PL", "NL", "SE", "NO", "AT", "GB", "US")


def in_order(regions: set[str]) -> list[str]:
    """The tracked regions in their usual order, then any other region alphabetically."""
    return sorted(regions, key=lambda r: (REGIONS.index(r) if r in REGIONS else len(REGIONS), r))
