"""Sharing: which case may go to which tier, one release asset per team (owned by the team), the
access applications with their own releases, and the programme zone's dataset cards."""


import dagster as dg

from assets.consent import CONSENT_KEYS, WITHDRAWAL_KEY
from assets.programme import as_of_date
from medlake.sharing.eligibility import release_eligibility
from medlake.sharing.run import process_applications, publish_team, write_programme_cards
from medlake.sharing.tables import RELEASE_ELIGIBILITY
from pipelines.policies import IO_RETRY_POLICY
from pipelines.resources import LakeResource, LandingResource, RegistryResource, ReleasesResource

ELIGIBILITY_KEY = dg.AssetKey(["deid", RELEASE_ELIGIBILITY.name])
APPLICATION_KEYS = [dg.AssetKey(["program", n]) for n in ("applications", "usage_reports", "application_problems")]
APPLICATION_RELEASES_KEY = dg.AssetKey(["releases", "applications"])
CARDS_KEY = dg.AssetKey(["program", "dataset_cards"])
# Publishing is disk-bound; one release writer at a time keeps two runs off the same dataset
# (the publishing lock would make the second wait anyway) and leaves the disk to ingestion.
RELEASE_POOL = "releases"


@dg.asset(key=ELIGIBILITY_KEY, group_name="sharing", kinds={"delta"},
          deps=[WITHDRAWAL_KEY, CONSENT_KEYS["consent_status"], dg.AssetKey(["program", "identifier_checks"])])
def eligibility(lake: LakeResource, registry: RegistryResource) -> dg.MaterializeResult:
    """For every case and tier: eligible or not, with every reason (tier not offered, withheld by the
    hospital, consent, identifier check)."""
    table = release_eligibility(lake.store(), registry.load())
    version = lake.store().replace(RELEASE_ELIGIBILITY, table, {})
    eligible = {}
    for tier, ok in zip(table.column("tier").to_pylist(), table.column("eligible").to_pylist()):
        eligible[tier] = eligible.get(tier, 0) + int(ok)
    return dg.MaterializeResult(metadata={"eligible_cases_by_tier": dg.MetadataValue.json(eligible),
                                          "rows": table.num_rows, "delta_version": version})


def team_release_asset(team: str) -> dg.AssetsDefinition:
    @dg.multi_asset(specs=[dg.AssetSpec(key=dg.AssetKey(["releases", team]), group_name="sharing", kinds={"folder"},
                                        owners=[f"team:{team}"], deps=[ELIGIBILITY_KEY])],
                    name=f"releases_{team.replace('-', '_')}", pool=RELEASE_POOL, retry_policy=IO_RETRY_POLICY)
    def release(lake: LakeResource, registry: RegistryResource, releases: ReleasesResource) -> dg.MaterializeResult:
        outcomes = publish_team(lake.store(), registry.load(), releases.root, team, as_of_date())
        table = "| release | action | cases | k min | suppressed |\n|---|---|---:|---:|---:|\n" + "\n".join(
            f"| {o.path} | {o.action} | {o.cases} | {o.k_min if o.k_min is not None else ''} | {o.suppressed} |"
            for o in outcomes if o.action != "empty")
        refused = [o.path for o in outcomes if o.action == "refused"]
        if refused:
            # A refused release keeps the previous version as latest; the run fails so somebody looks.
            # The checker would refuse it again, so the retry policy is skipped.
            raise dg.Failure(description=f"identifier checker refused {len(refused)} release(s): {', '.join(refused)}",
                             metadata={"releases": dg.MetadataValue.md(table)}, allow_retries=False)
        return dg.MaterializeResult(metadata={
            "releases": dg.MetadataValue.md(table),
            "published": sum(o.action == "published" for o in outcomes),
            "purged_versions": sum(o.action == "purged" for o in outcomes),
            "root": dg.MetadataValue.text(f"{releases.root.rstrip('/')}/<tier>/{team}")})

    return release


def access_applications_asset(teams: list[str]) -> dg.AssetsDefinition:
    team_releases = [dg.AssetKey(["releases", t]) for t in teams]

    @dg.multi_asset(
        specs=[dg.AssetSpec(key=k, group_name="sharing", kinds={"delta"}) for k in APPLICATION_KEYS]
        + [dg.AssetSpec(key=APPLICATION_RELEASES_KEY, group_name="sharing", kinds={"folder"}, deps=team_releases)],
        name="access_applications", pool=RELEASE_POOL, retry_policy=IO_RETRY_POLICY,
    )
    def access_applications(context: dg.AssetExecutionContext, landing: LandingResource, lake: LakeResource,
                            registry: RegistryResource, releases: ReleasesResource):
        """Applications under _applications/: the programme's eligibility rules, the committee's
        decision, a release of the approved review-tier datasets for each active one, revocation at
        expiry, and the usage reports due every six months."""
        r = process_applications(lake.store(), registry.load(), landing.zone().applications_root(), releases.root,
                                 as_of_date())
        for o in r.outcomes:
            context.log.info(f"{o.path}: {o.action}")
        meta = {"by_status": dg.MetadataValue.json(r.by_status), "problems": r.problems,
                "overdue_usage_reports": r.overdue_reports}
        for key in APPLICATION_KEYS:
            yield dg.MaterializeResult(asset_key=key, metadata=meta)
        yield dg.MaterializeResult(asset_key=APPLICATION_RELEASES_KEY, metadata={
            "published": sum(o.action == "published" for o in r.outcomes),
            "revoked": sum(o.action == "revoked" for o in r.outcomes)})

    return access_applications


@dg.asset(key=CARDS_KEY, group_name="sharing", kinds={"markdown"},
          deps=[WITHDRAWAL_KEY, dg.AssetKey(["deid", "cases"]), CONSENT_KEYS["consent_events"]])
def dataset_cards(lake: LakeResource, registry: RegistryResource) -> dg.MaterializeResult:
    """DATASET_CARD.md of every dataset in the registry, in the programme zone (each release also
    carries its own card, with its own counts)."""
    files = lake.store().lake.objects()
    folder = files.path("program/dataset_cards")
    paths = write_programme_cards(lake.store(), registry.load(), folder, as_of_date())
    files.sync_up("program/dataset_cards")
    return dg.MaterializeResult(metadata={"cards": len(paths), "folder": dg.MetadataValue.path(str(folder))})
