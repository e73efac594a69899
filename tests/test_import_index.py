"""`import openssl-index` through the worker-process path (small batches), in-process."""
from __future__ import annotations

import datetime as dt
import shutil

import pytest
from cryptography import x509

from publisher import importer
from publisher.clock import SystemClock
from publisher.root import load_settings
from publisher.errors import MalformedInput
from publisher.service import Repository
from publisher.sqlite_store import SQLiteStore
from publisher.store import Status


@pytest.fixture(scope="module")
def template(tmp_path_factory, demo_factory):
    return demo_factory(tmp_path_factory.mktemp("imp"), subscribers=10)


@pytest.fixture
async def repo(template, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "BATCH", 10)  # 35 lines: four batches, so the process pool runs
    d = tmp_path / "demo"
    shutil.copytree(template.dir, d)
    settings = load_settings(d / "pkirepo.toml")
    async with SQLiteStore(settings.store_path) as store:
        r = Repository(settings, store=store, signers={}, clock=SystemClock())
        await r.sync_issuers()
        yield r


def index_lines(n: int, first: int = 0x1000) -> list[str]:
    out = []
    for i in range(n):
        serial = f"{first + i:X}"
        if i % 3 == 0:
            out.append(f"R\t301231235959Z\t250101000000Z,keyCompromise,241231000000Z\t{serial}\tunknown\t/CN=r{i}")
        elif i % 7 == 0:
            out.append(f"R\t301231235959Z\t250101000000Z,certificateHold\t{serial}\tunknown\t/CN=h{i}")
        else:
            out.append(f"V\t301231235959Z\t\t{serial}\tunknown\t/CN=v{i}")
    return out


async def run(repo, tmp_path, lines):
    index = tmp_path / "index.txt"
    index.write_text("\n".join(lines) + "\n")
    return await importer.import_openssl_index(repo, index, repo.settings.ca("eCertCA2-17").certificate, None)


async def test_batches_in_worker_processes_import_everything(repo, tmp_path):
    n, revoked = await run(repo, tmp_path, index_lines(35))
    assert (n, revoked) == (35, 12 + 3)  # every third revoked; 7, 14, 28 held
    issuer = repo.issuer("eCertCA2-17")
    rec = await repo.store.certificate(issuer.id, 0x1000)
    assert rec.status is Status.REVOKED and rec.reason.name == "keyCompromise"
    assert rec.invalidity_at == dt.datetime(2024, 12, 31, tzinfo=dt.timezone.utc)
    assert rec.not_after == dt.datetime(2030, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    assert (await repo.store.certificate(issuer.id, 0x1000 + 7)).status is Status.HOLD
    assert (await repo.store.certificate(issuer.id, 0x1000 + 34)).subject == "/CN=v34"
    full = next(s for s in await repo.store.scopes() if s.name == "eCertCA2-17CRL1")
    snap = await repo.store.snapshot_entries(full)
    assert snap.count >= 16


async def test_duplicate_across_batches_names_both_lines(repo, tmp_path):
    lines = index_lines(30)
    lines.append(lines[2])  # line 31 repeats line 3, two batches later
    with pytest.raises(MalformedInput, match=r"index\.txt:31: serial 1002 appears twice \(also on line 3\)"):
        await run(repo, tmp_path, lines)


async def test_bad_line_in_a_late_batch_imports_nothing(repo, tmp_path):
    lines = index_lines(35)
    lines[32] = "R\t301231235959Z\tnot-a-time\t2222\tunknown\t/CN=x"
    with pytest.raises(MalformedInput, match=r"index\.txt:33: revocation date"):
        await run(repo, tmp_path, lines)
    issuer = repo.issuer("eCertCA2-17")
    assert await repo.store.certificate(issuer.id, 0x1000) is None  # the first batches were rolled back


async def test_serial_already_in_store_is_a_conflict(repo, tmp_path):
    good = x509.load_pem_x509_certificate((repo.settings.source.parent / "pki" / "good.pem").read_bytes())
    lines = index_lines(25)
    lines[20] = f"V\t301231235959Z\t\t{good.serial_number:X}\tunknown\t/CN=dup"
    from publisher.errors import Conflict

    with pytest.raises(Conflict, match=f"{good.serial_number:X}"):
        await run(repo, tmp_path, lines)
