// Java's PKIX validator (java.security.cert.CertPathValidator) as the relying party, for
// tests/interop/test_java.py. One JVM checks every certificate in every mode and prints one
// line per verdict:
//
//   <mode> <certificate file> fetched=<URLs or -> OK
//   <mode> <certificate file> fetched=<URLs or -> FAIL <BasicReason> <revocation reason or -> <message>
//
// Usage: java -Dcom.sun.security.enableCRLDP=true PkixCheck PHASE ROOT.pem CA.pem FULL.crl CERT.pem...
//
// `fetched` lists the URLs Java opened for that check, seen by a ProxySelector that every
// HTTP connection of the JDK consults. Java's PKIXRevocationChecker follows the CRL
// distribution points whatever com.sun.security.enableCRLDP says, and remembers a failed
// fetch (no retry for 30 s), so the offline modes run in a JVM of their own (PHASE offline,
// every connection refused: the verdicts come from the CertStore alone) and the online ones
// in another (PHASE online).
//
// Modes (all with NO_FALLBACK, so a verdict comes from the one method named):
//   crl-full      offline; PREFER_CRLS, ONLY_END_ENTITY, the full CRL in a CertStore
//   crl-none      offline; as crl-full with an empty CertStore: what "no CRL" looks like
//   crl-dp-leaf   PREFER_CRLS, ONLY_END_ENTITY, CRLs fetched from the leaf's CRL
//                 distribution point (its partition)
//   crl-dp-chain  PREFER_CRLS, CRLs fetched from every certificate's distribution point
//                 (the partition for the leaf, the ARL for the issuing CA)
//   ocsp          ONLY_END_ENTITY, OCSP at the URL in the leaf's AIA (ocsp.enable=true)
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ProxySelector;
import java.net.SocketAddress;
import java.net.URI;
import java.nio.file.Path;
import java.security.Security;
import java.security.cert.CRL;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertStore;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateRevokedException;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.PKIXRevocationChecker.Option;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

public final class PkixCheck {
    private static final CertificateFactory CF;

    static {
        try {
            CF = CertificateFactory.getInstance("X.509");
        } catch (Exception e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Records every URL the JDK connects to; refuses them all while `offline`. */
    private static final class Recorder extends ProxySelector {
        final List<String> seen = new ArrayList<>();
        boolean offline;

        @Override
        public List<Proxy> select(URI uri) {
            seen.add(uri.toString());
            if (offline) {
                // Port 1 on 127.0.0.1: nothing listens there, so the connection is refused.
                return List.of(new Proxy(Proxy.Type.HTTP, new InetSocketAddress("127.0.0.1", 1)));
            }
            return List.of(Proxy.NO_PROXY);
        }

        @Override
        public void connectFailed(URI uri, SocketAddress sa, IOException e) {
        }

        String drain() {
            String out = seen.isEmpty() ? "-" : String.join(",", seen);
            seen.clear();
            return out;
        }
    }

    private static final Recorder RECORDER = new Recorder();

    private static X509Certificate cert(String file) throws Exception {
        try (InputStream in = new FileInputStream(file)) {
            return (X509Certificate) CF.generateCertificate(in);
        }
    }

    private static CRL crl(String file) throws Exception {
        try (InputStream in = new FileInputStream(file)) {
            return CF.generateCRL(in);
        }
    }

    private static String oneLine(String s) {
        return s == null ? "-" : s.replaceAll("\\s+", " ");
    }

    private static String check(CertPathValidator validator, X509Certificate root, X509Certificate ca,
                                X509Certificate leaf, boolean offline, boolean ocsp,
                                Set<Option> options, Collection<CRL> crls) throws Exception {
        RECORDER.offline = offline;
        RECORDER.drain();
        Security.setProperty("ocsp.enable", Boolean.toString(ocsp));
        PKIXParameters params = new PKIXParameters(Set.of(new TrustAnchor(root, null)));
        PKIXRevocationChecker checker = (PKIXRevocationChecker) validator.getRevocationChecker();
        checker.setOptions(options);
        params.addCertPathChecker(checker);
        params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(crls)));
        CertPath path = CF.generateCertPath(List.of(leaf, ca));
        try {
            validator.validate(path, params);
            return "fetched=" + RECORDER.drain() + " OK";
        } catch (CertPathValidatorException e) {
            String revocation = "-";
            if (e.getCause() instanceof CertificateRevokedException) {
                revocation = ((CertificateRevokedException) e.getCause()).getRevocationReason().name();
            }
            return "fetched=" + RECORDER.drain() + " FAIL " + e.getReason() + " " + revocation + " " + oneLine(e.getMessage());
        }
    }

    public static void main(String[] args) throws Exception {
        boolean offline = args[0].equals("offline");
        X509Certificate root = cert(args[1]);
        X509Certificate ca = cert(args[2]);
        List<CRL> full = List.of(crl(args[3]));
        ProxySelector.setDefault(RECORDER);
        CertPathValidator validator = CertPathValidator.getInstance("PKIX");
        EnumSet<Option> crlLeaf = EnumSet.of(Option.PREFER_CRLS, Option.NO_FALLBACK, Option.ONLY_END_ENTITY);
        EnumSet<Option> crlChain = EnumSet.of(Option.PREFER_CRLS, Option.NO_FALLBACK);
        EnumSet<Option> ocspLeaf = EnumSet.of(Option.NO_FALLBACK, Option.ONLY_END_ENTITY);
        for (int i = 4; i < args.length; i++) {
            X509Certificate leaf = cert(args[i]);
            String name = Path.of(args[i]).getFileName().toString();
            String[][] runs = offline ? new String[][] {
                {"crl-full", check(validator, root, ca, leaf, true, false, crlLeaf, full)},
                {"crl-none", check(validator, root, ca, leaf, true, false, crlLeaf, List.of())},
            } : new String[][] {
                {"crl-dp-leaf", check(validator, root, ca, leaf, false, false, crlLeaf, List.of())},
                {"crl-dp-chain", check(validator, root, ca, leaf, false, false, crlChain, List.of())},
                {"ocsp", check(validator, root, ca, leaf, false, true, ocspLeaf, List.of())},
            };
            for (String[] run : runs) {
                System.out.println(run[0] + " " + name + " " + run[1]);
            }
        }
    }
}
