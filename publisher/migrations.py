"""Numbered schema migrations. Append only: a migration that has shipped is never edited.

`PRAGMA user_version` holds the number of migrations applied; each runs in its own
transaction together with the version bump, so a crash leaves the schema at a whole step.
"""
from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the repository core.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE issuers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,          -- config name: URL segment and CLI --issuer
        subject_der BLOB NOT NULL,
        key_id BLOB NOT NULL,               -- subjectKeyIdentifier (or SHA-1 of the key)
        cert_der BLOB NOT NULL
    );
    CREATE TABLE certificates (
        id INTEGER PRIMARY KEY,
        issuer_id INTEGER NOT NULL REFERENCES issuers(id),
        serial BLOB NOT NULL,               -- sort key: one length byte + big-endian magnitude
        der BLOB,                           -- NULL when imported from an index without files
        subject TEXT,
        not_before INTEGER,                 -- Unix seconds
        not_after INTEGER,
        dp_url TEXT,                        -- CRL distribution point the certificate names
        is_ca INTEGER NOT NULL DEFAULT 0,
        status INTEGER NOT NULL DEFAULT 0,  -- 0 good, 1 revoked, 2 on hold
        reason INTEGER,                     -- NULL: no reason given
        revoked_at INTEGER,
        invalidity_at INTEGER,
        added_at INTEGER NOT NULL,
        UNIQUE (issuer_id, serial)
    );
    -- The CRL-ready view: one row per certificate currently revoked or on hold, with its
    -- revokedCertificates entry pre-encoded so that a CRL is built by concatenation.
    CREATE TABLE revoked (
        cert_id INTEGER PRIMARY KEY REFERENCES certificates(id),
        issuer_id INTEGER NOT NULL,
        serial BLOB NOT NULL,
        dp_url TEXT,
        is_ca INTEGER NOT NULL,
        not_after INTEGER,
        entry BLOB NOT NULL
    );
    CREATE INDEX revoked_by_issuer ON revoked (issuer_id, serial);
    CREATE INDEX revoked_by_dp ON revoked (issuer_id, dp_url, serial);
    CREATE TABLE scopes (
        id INTEGER PRIMARY KEY,
        issuer_id INTEGER NOT NULL REFERENCES issuers(id),
        kind TEXT NOT NULL CHECK (kind IN ('full', 'partition', 'arl')),
        dp_url TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL UNIQUE,          -- publication name: /crl/<name>.crl
        last_number BLOB,                   -- CRL number counter (sort-key encoded), never reused
        UNIQUE (issuer_id, kind, dp_url)
    );
    CREATE TABLE crls (
        id INTEGER PRIMARY KEY,
        scope_id INTEGER NOT NULL REFERENCES scopes(id),
        number BLOB NOT NULL,               -- sort-key encoded CRL number
        this_update INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        covered_event INTEGER NOT NULL,     -- the last change-log event this CRL reflects
        issued_at INTEGER NOT NULL,
        source TEXT NOT NULL,               -- 'signed' here or 'handed-in' (crl add)
        der BLOB NOT NULL,
        UNIQUE (scope_id, number)
    );
    -- Change log: every mutation appends here. Servers poll max(id) to notice changes made
    -- by other processes; the CRL scheduler compares it with covered_event.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        issuer_id INTEGER,
        cert_id INTEGER,
        detail TEXT
    );
    CREATE INDEX events_by_issuer ON events (issuer_id, kind, id);
    """,
    # 2: pre-signed OCSP responses (ocsp/responder.py, through sqlite_presigned.py).
    # One row per certificate and CertID hash algorithm; the status columns record what the answer says, so that a row
    # whose certificate changed since it was signed is recognised and never served.
    """
    CREATE TABLE ocsp_responses (
        issuer_id INTEGER NOT NULL REFERENCES issuers(id),
        serial BLOB NOT NULL,               -- sort key, as certificates.serial
        hash TEXT NOT NULL,                 -- CertID hash algorithm: sha1, sha256, sha384, sha512
        status INTEGER NOT NULL,            -- certificates.status the answer reflects
        reason INTEGER,                     -- certificates.reason the answer reflects
        revoked_at INTEGER,                 -- certificates.revoked_at the answer reflects
        responder_key_hash BLOB NOT NULL,   -- SHA-1 of the signing key: a new responder key voids the row
        this_update INTEGER NOT NULL,       -- Unix seconds; also producedAt
        next_update INTEGER NOT NULL,
        single_der BLOB NOT NULL,           -- the SingleResponse, reused when signing with a nonce
        der BLOB NOT NULL,                  -- the whole OCSPResponse, served as is
        PRIMARY KEY (issuer_id, serial, hash)
    ) WITHOUT ROWID;
    """,
    # 3: covering indexes for CRL reads. Each carries every column a CRL query filters on
    # and the pre-encoded entry, in serial order, so a million-entry CRL is read by walking
    # one index instead of one random table lookup per entry (4.7 s -> 0.3 s at 1M).
    """
    DROP INDEX revoked_by_issuer;
    DROP INDEX revoked_by_dp;
    CREATE INDEX revoked_crl ON revoked (issuer_id, serial, is_ca, not_after, entry);
    CREATE INDEX revoked_crl_by_dp ON revoked (issuer_id, dp_url, serial, is_ca, not_after, entry);
    """,
    # 4: a CA taken out of service, and the CRL number a migrated CA had reached.
    """
    ALTER TABLE issuers ADD COLUMN retired_at INTEGER;           -- Unix seconds; NULL: in service
    ALTER TABLE issuers ADD COLUMN keep_published INTEGER NOT NULL DEFAULT 0;  -- 1: its last CRLs stay out for good
    -- Every scope of the issuer, existing or made later, numbers its CRLs above this
    -- (sort-key encoded; NULL: no floor): the numbering of a CA imported from `openssl ca`.
    ALTER TABLE issuers ADD COLUMN crl_number_floor BLOB;
    """,
    # 5: disclosure documents (CPS 8, CP 四.9): every version of every document, kept for good.
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,             -- publication order: the disclosure record
        kind TEXT NOT NULL,                 -- cps, cp, subscriber-agreement, ...
        version TEXT NOT NULL,
        lang TEXT NOT NULL,                 -- zh-Hant, en, zh-Hans
        effective TEXT NOT NULL,            -- ISO date the version takes effect
        oid TEXT,
        media_type TEXT NOT NULL,
        ext TEXT NOT NULL,                  -- pdf or html
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        published_at INTEGER NOT NULL,      -- Unix seconds
        data BLOB NOT NULL,
        UNIQUE (kind, version, lang)
    );
    """,
    # 6: the trust list of certificate types qualifying for mutual recognition (CP annex 1.2):
    # its entries and their status history, and every list issued, kept with its signed bytes.
    """
    CREATE TABLE trustlist_entries (
        id INTEGER PRIMARY KEY,             -- EntryIdentifier in the XML
        ca_name TEXT NOT NULL,
        ca_cert_der BLOB NOT NULL,          -- as listed: a later config change does not alter it
        cert_type TEXT NOT NULL,            -- personal, organisation
        policy_oids TEXT NOT NULL,          -- space-separated, in order
        cps_url TEXT NOT NULL,
        name_zh_hant TEXT NOT NULL,
        name_en TEXT NOT NULL
    );
    CREATE TABLE trustlist_statuses (
        entry_id INTEGER NOT NULL REFERENCES trustlist_entries(id),
        position INTEGER NOT NULL,          -- 0 for the grant, then each change in order
        status TEXT NOT NULL,               -- granted, suspended, withdrawn
        start INTEGER NOT NULL,             -- Unix seconds
        seq INTEGER NOT NULL,               -- the list that first carried it
        PRIMARY KEY (entry_id, position)
    );
    CREATE TABLE trustlists (
        seq INTEGER PRIMARY KEY,            -- TSLSequenceNumber: 1, 2, 3, ... never reused
        issued_at INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        xml BLOB NOT NULL                   -- the signed bytes as published, never re-signed
    );
    """,
    # 7: the LDAP name index: subscriber certificates found by cn and mail without parsing
    # every certificate (ldap/name_index.py fills it from the DER, rows of any age included,
    # and records in meta 'cert_names_upto' the highest certificate id it has read).
    """
    CREATE TABLE cert_names (
        attr TEXT NOT NULL,                 -- 'cn' (the entry's cn: the subject CN, else the serial) or 'mail'
        value TEXT NOT NULL,                -- normalised as LDAP compares it: case-folded, spaces collapsed
        cert_id INTEGER NOT NULL REFERENCES certificates(id),
        PRIMARY KEY (attr, value, cert_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO meta (key, value) VALUES ('cert_names_upto', '0');
    """,
    # 8: operations: maintenance windows, the heartbeat, and the availability ledger.
    """
    CREATE TABLE maintenance_windows (
        id INTEGER PRIMARY KEY,
        start INTEGER NOT NULL,             -- Unix seconds
        "end" INTEGER,                      -- NULL: emergency maintenance still under way
        reason TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('scheduled', 'emergency')),
        created_at INTEGER NOT NULL,
        cancelled_at INTEGER                -- a cancelled window stays on record
    );
    CREATE INDEX maintenance_by_time ON maintenance_windows (start);
    -- One row per serving process: the last time it was alive. A start after a crash counts
    -- the time from the last heartbeat as downtime.
    CREATE TABLE heartbeats (
        id INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        beat_at INTEGER NOT NULL,
        stopped_at INTEGER                  -- set by a clean shutdown
    );
    -- Every interval the service was not ready: unplanned (down, crashed, not ready) with its
    -- cause. Windows are in maintenance_windows.
    CREATE TABLE downtime (
        id INTEGER PRIMARY KEY,
        start INTEGER NOT NULL,
        "end" INTEGER,                      -- NULL: still not ready
        cause TEXT NOT NULL
    );
    CREATE INDEX downtime_by_time ON downtime (start);
    """,
    # 9: compact pre-signed OCSP answers. A row keeps only what was signed (tbsResponseData,
    # signatureAlgorithm, signature: a few hundred bytes instead of the whole response with the
    # responder certificate, which is joined in when serving) and when it is due for signing
    # again, indexed so that the pre-signer reads due rows instead of walking every certificate.
    # The old rows are dropped: they are only ever signed again.
    """
    DROP TABLE ocsp_responses;
    CREATE TABLE ocsp_responses (
        issuer_id INTEGER NOT NULL REFERENCES issuers(id),
        serial BLOB NOT NULL,               -- sort key, as certificates.serial
        hash TEXT NOT NULL,                 -- CertID hash algorithm: sha1, sha256, sha384, sha512
        status INTEGER NOT NULL,            -- certificates.status the answer reflects
        reason INTEGER,                     -- certificates.reason the answer reflects
        revoked_at INTEGER,                 -- certificates.revoked_at the answer reflects
        responder_key_hash BLOB NOT NULL,   -- SHA-1 of the signing key: a new responder key voids the row
        this_update INTEGER NOT NULL,       -- Unix seconds; also producedAt
        next_update INTEGER NOT NULL,
        refresh_at INTEGER NOT NULL,        -- Unix seconds: when the pre-signer signs it again
        signed BLOB NOT NULL,               -- BasicOCSPResponse content without certs
        PRIMARY KEY (issuer_id, serial, hash)
    ) WITHOUT ROWID;
    CREATE INDEX ocsp_responses_due ON ocsp_responses (refresh_at);
    """,
    # 10: the CRL distribution points an issuer's certificates name, found without reading
    # every certificate: start-up asks for them, and a million-row scan kept HTTP closed for
    # seconds. The distinct values are walked by skipping along this index.
    """
    CREATE INDEX certificates_dp ON certificates (issuer_id, dp_url) WHERE is_ca = 0 AND dp_url IS NOT NULL;
    """,
    # 11: notices (CP 四.8, 六.26): CA-certificate suspension, revocation and non-renewal,
    # incidents and scheduled maintenance, each in both languages of the web pages. Withdrawn
    # notices stay, marked, so what was announced is never lost.
    """
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,             -- publication order
        kind TEXT NOT NULL,                 -- ca-suspension, ca-revocation, ca-non-renewal, incident, maintenance
        title_zh_hant TEXT NOT NULL,
        title_en TEXT NOT NULL,
        body_zh_hant TEXT NOT NULL,
        body_en TEXT NOT NULL,
        starts INTEGER NOT NULL,            -- Unix seconds: takes effect (a maintenance window's start)
        ends INTEGER,                       -- Unix seconds: a window's or an incident's end; NULL: none
        published_at INTEGER NOT NULL,
        withdrawn_at INTEGER                -- NULL: shown
    );
    """,
    # The audit trail (CPS 4.5; CP 七.16-24): every change, refusal and CRL issued, each
    # record chained to the one before by its SHA-256 (publisher/audit.py). Rows are only ever
    # appended, or pruned from the oldest end past the retention; the trigger refuses an
    # update, so a change in place needs a deliberate act that the chain then shows.
    # Checkpoints are the signed heads; audit_pruned, what the oldest kept record follows.
    """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,            -- 1, 2, ... without gaps
        at INTEGER NOT NULL,                -- Unix seconds
        actor_kind TEXT NOT NULL,           -- certificate, token, os-user, system
        actor_name TEXT NOT NULL,
        actor_source TEXT,                  -- remote address, when over the network
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        result TEXT NOT NULL,               -- ok, or the refusal's reason
        detail TEXT,                        -- canonical JSON, as hashed
        prev TEXT NOT NULL,                 -- SHA-256 hex of the record before
        hash TEXT NOT NULL                  -- SHA-256 hex of this record's canonical encoding
    );
    CREATE INDEX audit_by_time ON audit (at);
    CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit records are never changed'); END;
    CREATE TABLE audit_checkpoints (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        head TEXT NOT NULL,
        at INTEGER NOT NULL,
        key_id TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        signature BLOB NOT NULL
    );
    CREATE TABLE audit_pruned (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        upto INTEGER NOT NULL,              -- the newest record pruned
        head TEXT NOT NULL                  -- its hash: the oldest kept record's previous hash
    );
    """,
]
