// BouncyCastle's EST client (org.bouncycastle.est), as crates/cli/tests/est.rs runs it: fetch
// the CA certificates, then enroll a fresh P-256 key with HTTP Basic, trusting only the site
// root. Usage:
//   java EstEnroll HOST:PORT ROOT.pem REALM USER PASSWORD CN OUT.pem
// Prints `cacerts N`, then `enrolled SUBJECT` and writes the certificate (PEM) to OUT.pem.
// Any failure (an ESTException included: status, realm mismatch) exits non-zero with the message.

import java.io.FileInputStream;
import java.io.FileWriter;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Security;
import java.security.cert.CertificateFactory;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.Base64;
import java.util.Collections;
import javax.net.ssl.X509TrustManager;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.est.CACertsResponse;
import org.bouncycastle.est.ESTService;
import org.bouncycastle.est.EnrollmentResponse;
import org.bouncycastle.est.HttpAuth;
import org.bouncycastle.est.jcajce.JcaJceUtils;
import org.bouncycastle.est.jcajce.JsseESTServiceBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;

public class EstEnroll {
    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: EstEnroll HOST:PORT ROOT.pem REALM USER PASSWORD CN OUT.pem");
            System.exit(2);
        }
        String server = args[0];
        String realm = args[2];
        Security.addProvider(new BouncyCastleProvider());

        X509Certificate root;
        try (FileInputStream in = new FileInputStream(args[1])) {
            root = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        X509TrustManager[] trust = JcaJceUtils.getCertPathTrustManager(
            Collections.singleton(new TrustAnchor(root, null)), null);
        ESTService est = new JsseESTServiceBuilder(server, trust).build();

        CACertsResponse ca = est.getCACerts();
        X509CertificateHolder[] caCerts = ESTService.storeToArray(ca.getCertificateStore());
        System.out.println("cacerts " + caCerts.length);

        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC", "BC");
        kpg.initialize(new ECGenParameterSpec("P-256"));
        KeyPair kp = kpg.generateKeyPair();
        ContentSigner signer = new JcaContentSignerBuilder("SHA256withECDSA").setProvider("BC")
            .build(kp.getPrivate());
        PKCS10CertificationRequest csr = new JcaPKCS10CertificationRequestBuilder(
            new X500Name("CN=" + args[5]), kp.getPublic()).build(signer);

        EnrollmentResponse resp = est.simpleEnroll(false, csr,
            new HttpAuth(realm, args[3], args[4].toCharArray()));
        if (!resp.isCompleted()) {
            System.err.println("not completed: retry after " + resp.getNotBefore());
            System.exit(3);
        }
        X509CertificateHolder[] certs = ESTService.storeToArray(resp.getStore());
        if (certs.length != 1) {
            System.err.println("expected one certificate, got " + certs.length);
            System.exit(4);
        }
        String b64 = Base64.getMimeEncoder(64, "\n".getBytes()).encodeToString(certs[0].getEncoded());
        try (FileWriter out = new FileWriter(args[6])) {
            out.write("-----BEGIN CERTIFICATE-----\n" + b64 + "\n-----END CERTIFICATE-----\n");
        }
        System.out.println("enrolled " + certs[0].getSubject());
    }
}
