# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
DEMO    ?= var/demo
HTTP    ?= 127.0.0.1:8080
LDAP    ?= 127.0.0.1:1389
# Debian packages the interop tests and benchmarks drive as real clients.
SYSPKGS := openssl curl ldap-utils apache2-utils libnss3-tools xmlsec1 nginx gnutls-bin chromium fonts-noto-cjk fontconfig tidy postgresql default-jdk-headless
SYSBINS := openssl curl ldapsearch ab certutil crlutil vfychain xmlsec1 nginx certtool chromium fc-list tidy javac
# The browser tests' screenshots draw Chinese with this font family (fonts-noto-cjk).
SYSFONT := Noto Sans CJK

.PHONY: venv demo test sysdeps benchdeps bench bench-crl bench-ocsp bench-ldap bench-scale clean

$(BIN)/pkirepo: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/pkirepo

# Installs missing system packages when run as root; then fails, naming them, if any of the
# tools the tests drive is still missing (a test never skips for want of its client).
sysdeps:
	@missing=""; for b in $(SYSBINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	fc-list 2>/dev/null | grep -qi "$(SYSFONT)" || missing="$$missing font:$(SYSFONT)"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
	  echo "installing system packages for:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSPKGS) >/dev/null; \
	fi; \
	missing=""; for b in $(SYSBINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	fc-list 2>/dev/null | grep -qi "$(SYSFONT)" || missing="$$missing font:$(SYSFONT)"; \
	if [ -n "$$missing" ]; then \
	  echo "missing system tools:$$missing (install: apt-get install $(SYSPKGS))" >&2; exit 1; \
	fi

# The PostgreSQL server the store tests start (tests/pg_testlib.py). Its binaries are not on
# PATH (Debian keeps them in /usr/lib/postgresql/VERSION/bin), so SYSBINS cannot check them.
.PHONY: pgserver
sysdeps: pgserver
pgserver:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing the PostgreSQL server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "missing the PostgreSQL server (install: apt-get install postgresql)" >&2; exit 1; \
	fi

# HTTP and LDAP go to `serve` too, so that they move the listeners of a demo made earlier
# (the URLs inside its certificates and CRLs keep the port it was made with).
demo: venv
	@test -f $(DEMO)/pkirepo.toml || $(BIN)/pkirepo demo init $(DEMO) --http $(HTTP) --ldap $(LDAP)
	$(BIN)/pkirepo serve --config $(DEMO)/pkirepo.toml --http $(HTTP) --ldap $(LDAP)

test: venv sysdeps
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Peers the benchmarks run side by side with ours: openssl ca / ocsp, ab, slapd + libldap.
benchdeps: sysdeps
	@if ! command -v slapd >/dev/null 2>&1 || ! test -f /usr/include/ldap.h || ! command -v gcc >/dev/null 2>&1 \
	    || ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd libldap-dev gcc wrk >/dev/null; \
	  else echo "missing: slapd libldap-dev gcc wrk (apt-get install slapd libldap-dev gcc wrk)"; fi; \
	fi

bench: bench-crl bench-ocsp bench-ldap

bench-crl: venv sysdeps
	$(BIN)/python -m bench.crl

bench-ocsp: venv sysdeps
	$(BIN)/python -m bench.ocsp

bench-ldap: venv benchdeps
	$(BIN)/python -m bench.ldap

# A store of SCALE certificates (default 1,000,000; `make bench-scale SCALE=100000` for a
# quicker run) behind a real `pkirepo serve`: start-up, loop lag, RSS, store size, a burst
# of revocations, OCSP/LDAP visibility and search latency. Takes minutes and gigabytes.
SCALE ?= 1000000
bench-scale: venv sysdeps
	$(BIN)/python -m bench.scale --subscribers $(SCALE)

# The same figures on PostgreSQL beside SQLite (a throwaway server of Debian's postgresql,
# the store moved there by `pkirepo store copy`), then OCSP throughput of one node and two.
.PHONY: bench-scale-pg
bench-scale-pg: venv sysdeps
	$(BIN)/python -m bench.scale --subscribers $(SCALE) --pg-server

clean:
	rm -rf $(VENV) var build *.egg-info
