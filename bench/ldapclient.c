/* A sequential LDAP load client for bench/ldap.py, built on OpenLDAP's libldap.
 *
 * usage: ldapclient URI MODE BASE SECONDS [VALUE...]
 *   MODE base: base-object searches of BASE for certificateRevocationList;binary
 *   MODE mail: subtree searches under BASE for (mail=VALUE), cycling through the VALUEs
 * One connection, one request at a time, anonymous.  Prints "ops seconds errors".
 * Every search must return exactly one entry, else it counts as an error.
 */
#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s URI base|mail BASE SECONDS [VALUE...]\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1], *mode = argv[2], *base = argv[3];
    double seconds = atof(argv[4]);
    int nvalues = argc - 5;
    char **values = argv + 5;
    int is_mail = strcmp(mode, "mail") == 0;
    if (is_mail && nvalues == 0) {
        fprintf(stderr, "mail mode needs values\n");
        return 2;
    }
    LDAP *ld;
    if (ldap_initialize(&ld, uri) != LDAP_SUCCESS) return 1;
    int version = LDAP_VERSION3;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    struct berval cred = {0, NULL};
    int rc = ldap_sasl_bind_s(ld, "", LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
    if (rc != LDAP_SUCCESS) {
        fprintf(stderr, "bind: %s\n", ldap_err2string(rc));
        return 1;
    }
    char *crl_attrs[] = {"certificateRevocationList;binary", NULL};
    char *mail_attrs[] = {"userCertificate;binary", "mail", "cn", NULL};
    char filter[512];
    long ops = 0, errors = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int k = 0; k < 64; k++) {
            LDAPMessage *res = NULL;
            if (is_mail) {
                snprintf(filter, sizeof filter, "(mail=%s)", values[ops % nvalues]);
                rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, filter, mail_attrs, 0,
                                       NULL, NULL, NULL, 0, &res);
            } else {
                rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_BASE, "(objectClass=*)", crl_attrs,
                                       0, NULL, NULL, NULL, 0, &res);
            }
            if (rc != LDAP_SUCCESS || ldap_count_entries(ld, res) != 1) errors++;
            if (res) ldap_msgfree(res);
            ops++;
        }
        t = now();
    }
    printf("%ld %.6f %ld\n", ops, t - start, errors);
    ldap_unbind_ext_s(ld, NULL, NULL);
    return 0;
}
