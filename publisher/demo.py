"""`pkirepo demo init`: a demo PKI, its config file and a populated store."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import demo_documents
from .clock import Clock
from .config import parse_listen
from .crl import Reason
from .demo_pki import CA_NAME, ROOT_NAME, DemoPki, make_demo_pki, make_trustlist_signer
from .errors import ConfigError
from .root import load_settings, trust_list_service
from .service import Repository, load_signers
from .sqlite_store import SQLiteStore
from .store import Action

CONFIG_TEMPLATE = """\
# pkirepo demo configuration, written by `pkirepo demo init`.
# Every key is explained in config/pkirepo.example.toml.

[store]
path = "pkirepo.sqlite"

[http]
listen = "{listen}"
base_url = "{base_url}"

[publication]
dir = "pub"

[crl]
daily = ["01:15", "06:15", "11:00"]      # UTC, as in CPS Appendix C
next_update_hours = 24
supplementary_delay_seconds = {delay}
reason_unspecified = "omit"               # RFC 5280; "write" puts code 0 as the CPS does
expired_revoked = "keep"

[ldap]
listen = "{ldap_listen}"

[[ca]]
name = "{root}"
certificate = "pki/{root}.pem"
key = "pki/{root}.key"
arl = "RootCA2ARL"
arl_url = "{base_url}/crl/RootCA2ARL.crl"
ocsp_responder = "pki/ocsp-{root}.pem"
ocsp_responder_key = "pki/ocsp-{root}.key"

[[ca]]
name = "{ca}"
certificate = "pki/{ca}.pem"
key = "pki/{ca}.key"
full_crl = "eCertCA2-17CRL1"
partitions = true                         # eCertCA2-17CRL2 .. CRL4, from the certificates' CDPs
ocsp_responder = "pki/ocsp-{ca}.pem"
ocsp_responder_key = "pki/ocsp-{ca}.key"

# The trust list of certificate types qualifying for mutual recognition, signed by the
# scheme operator's own key (a demo one, self-signed).
[trustlist]
key = "pki/trustlist-signer.key"
certificate = "pki/trustlist-signer.pem"
next_update_days = 30
operator = {{ "zh-Hant" = "數字政策辦公室（示範）", en = "Digital Policy Office (demo)" }}
"""

# The demo's trust list: both certificate types of the issuing CA, granted.
DEMO_TRUST_ENTRIES = (
    ("personal", "香港郵政電子證書（個人）（示範）", "Hongkong Post e-Cert (Personal) (demo)"),
    ("organisation", "香港郵政電子證書（機構）（示範）", "Hongkong Post e-Cert (Organisational) (demo)"),
)


def write_config(directory: Path, *, http: str, ldap: str, delay: int = 60) -> Path:
    host, port = parse_listen(http)
    shown = f"[{host}]" if ":" in host else host
    text = CONFIG_TEMPLATE.format(
        listen=http, base_url=f"http://{shown}:{port}", ldap_listen=ldap, root=ROOT_NAME, ca=CA_NAME, delay=delay)
    path = directory / "pkirepo.toml"
    path.write_text(text)
    return path


async def init_demo(
    directory: Path,
    *,
    http: str,
    ldap: str,
    subscribers: int,
    clock: Clock,
    progress: Callable[[int, int], object] | None = None,
    bare: bool = False,
) -> tuple[Path, DemoPki, Repository]:
    """Make the demo in `directory`: PKI, config, store and CRLs, then (unless `bare`) the
    documents and notices that fill the web pages."""
    directory = Path(directory)
    if (directory / "pkirepo.toml").exists():
        raise ConfigError(f"{directory / 'pkirepo.toml'} exists already: choose an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    host, port = parse_listen(http)
    shown = f"[{host}]" if ":" in host else host
    pki = make_demo_pki(directory, base_url=f"http://{shown}:{port}", subscribers=subscribers,
                        now=clock.now(), progress=progress)
    # Short names for people trying the demo: pki/root.pem and pki/ca.pem (the issuing CA).
    for short, cert in (("root.pem", pki.root), ("ca.pem", pki.ca)):
        (cert.parent / short).write_bytes(cert.read_bytes())
    make_trustlist_signer(directory, now=clock.now())
    config = write_config(directory, http=http, ldap=ldap)
    settings = load_settings(config)
    store = SQLiteStore(settings.store_path)
    async with store:
        repo = Repository(settings, store=store, signers=load_signers(settings), clock=clock)
        await repo.sync_issuers()
        files = [pki.subscribers, pki.revoked_ca]
        await repo.add_certificates((p.read_bytes(), str(p)) for p in files)
        for change in pki.changes:
            reason = None if change.reason is None else Reason.parse(change.reason)
            await repo.change_status(change.issuer, change.serial, Action(change.action), reason=reason,
                                     at=change.time, invalidity=change.invalidity)
        await repo.issue_due(force=True)
        trust = trust_list_service(settings, store=store, repository=repo, clock=clock, signing=True)
        for cert_type, zh, en in DEMO_TRUST_ENTRIES:
            await trust.add(ca_name=CA_NAME, cert_type=cert_type, policy_oids=None,
                            cps_url=f"{settings.http.base_url}/cps", names={"zh-Hant": zh, "en": en})
        if not bare:
            await publish_samples(repo, clock)
    return config, pki, repo


async def publish_samples(repo: Repository, clock: Clock) -> None:
    """The demo's documents (CPS 1.0 and 1.1, the CP) and notices, through the same service
    calls as `pkirepo doc publish` and `pkirepo notice add`."""
    for d in demo_documents.documents():
        await repo.publish_document(kind=d.kind, version=d.version, lang=d.lang, effective=d.effective, oid=d.oid,
                                    data=d.data, source=d.name)
    for n in demo_documents.notices(clock.now()):
        await repo.add_notice(kind=n.kind, titles=n.titles, bodies=n.bodies, starts=n.starts, ends=n.ends)


def demo_summary(config: Path, pki: DemoPki, settings) -> str:
    base = settings.http.base_url
    lines = [
        f"demo ready: {config}",
        f"  serve:   pkirepo serve --config {config}",
        f"  index:   {base}/crl/",
        f"  samples: {pki.good} (good), {pki.revoked} (revoked), {pki.held} (on hold)",
        f"  CAs:     {pki.root.parent / 'root.pem'} (root), {pki.ca.parent / 'ca.pem'} (issuing CA)",
        f"  trust list: {base}/trustlist/  (XML: {base}/trustlist/current.xml)",
        f"  pages:   {base}/  {base}/relying-parties  {base}/documents/  {base}/notices.atom",
    ]
    return "\n".join(lines)


