//! For every profile: compliant certificates, and non-compliant ones that each fail exactly the
//! named rules (table-driven, certificates issued by the test CA and parsed back).

use crate::support::{CA, DAY, Leaf, NOW, ctx, facts_of, failing};
use fleetpki_model::oid::{CLIENT_AUTH, KeyUsageBit::*, SERVER_AUTH};
use fleetpki_profiles::{Context, InputFormat, Severity, Status, check, profile, profiles};
use fleetpki_x509::key::KeyType::*;

fn opt(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// Context for site systems with both names.
fn site(intranet: Option<&str>, internet: Option<&str>) -> Context {
    Context {
        intranet_fqdn: intranet.map(str::to_string),
        internet_fqdn: internet.map(str::to_string),
        ..ctx()
    }
}

fn exported(format: Option<InputFormat>, exportable: Option<bool>) -> Context {
    Context {
        format,
        key_exportable: exportable,
        ..ctx()
    }
}

struct Case {
    profile: &'static str,
    label: &'static str,
    leaf: Leaf,
    ctx: Context,
    fails: &'static [&'static str],
}

fn case(
    profile: &'static str,
    label: &'static str,
    leaf: Leaf,
    ctx: Context,
    fails: &'static [&'static str],
) -> Case {
    Case {
        profile,
        label,
        leaf,
        ctx,
        fails,
    }
}

fn cases() -> Vec<Case> {
    let both = || site(Some("mp.fleet.test"), Some("mp.contoso.com"));
    let cmg = |exportable| Context {
        service_name: opt("contoso-cmg.cloudapp.net"),
        key_exportable: Some(exportable),
        ..ctx()
    };
    let sql = || site(Some("sql1.fleet.test"), None);
    let cluster = |exportable| Context {
        key_exportable: Some(exportable),
        ..site(Some("sqlc.fleet.test"), None)
    };
    let p12 = || exported(Some(InputFormat::Pkcs12), Some(true));
    let proxy = || site(None, Some("proxy.contoso.com"));
    let pc1 = || Context {
        computer_name: opt("PC1"),
        ..ctx()
    };
    let der = || exported(Some(InputFormat::Der), None);
    let cmg_leaf = || Leaf::server("contoso-cmg.cloudapp.net").key(Rsa2048);
    let always_on = || Leaf::server("sqlc.fleet.test").key(Rsa2048).days(731);
    vec![
        // site-system-https
        case(
            "site-system-https",
            "both names in the SAN, no key limit",
            Leaf::server("mp.fleet.test")
                .key(Rsa4096)
                .dns(&["mp.fleet.test", "mp.contoso.com"]),
            both(),
            &[],
        ),
        case(
            "site-system-https",
            "both names in the CN with the seed's &",
            Leaf::server("mp.fleet.test&mp.contoso.com"),
            both(),
            &[],
        ),
        case(
            "site-system-https",
            "client EKU only",
            Leaf::new().cn("mp.fleet.test").dns(&["mp.contoso.com"]),
            both(),
            &["eku-server-auth"],
        ),
        case(
            "site-system-https",
            "internet name missing",
            Leaf::server("mp.fleet.test").dns(&["mp.fleet.test"]),
            both(),
            &["internet-fqdn"],
        ),
        case(
            "site-system-https",
            "intranet name missing",
            Leaf::server("mp.contoso.com"),
            both(),
            &["intranet-fqdn"],
        ),
        case(
            "site-system-https",
            "intranet only configured",
            Leaf::server("x.test").dns(&["mp.fleet.test"]),
            site(Some("mp.fleet.test"), None),
            &[],
        ),
        case(
            "site-system-https",
            "expired",
            Leaf::server("mp.fleet.test").window(NOW - 400 * DAY, NOW - DAY),
            site(Some("mp.fleet.test"), None),
            &["within-validity"],
        ),
        case(
            "site-system-https",
            "not yet valid",
            Leaf::server("mp.fleet.test").window(NOW + DAY, NOW + 9 * DAY),
            site(Some("mp.fleet.test"), None),
            &["within-validity"],
        ),
        // cloud-management-gateway
        case(
            "cloud-management-gateway",
            "RSA-2048, CN = service name",
            cmg_leaf(),
            cmg(true),
            &[],
        ),
        case(
            "cloud-management-gateway",
            "RSA-4096",
            cmg_leaf().key(Rsa4096),
            cmg(true),
            &[],
        ),
        case(
            "cloud-management-gateway",
            "EC key",
            cmg_leaf().key(EcdsaP256),
            cmg(true),
            &["key-rsa-2048-or-4096"],
        ),
        case(
            "cloud-management-gateway",
            "RSA-3072",
            cmg_leaf().key(Rsa3072),
            cmg(true),
            &["key-rsa-2048-or-4096"],
        ),
        case(
            "cloud-management-gateway",
            "other CN",
            Leaf::server("www.contoso.com").key(Rsa2048),
            cmg(true),
            &["cn-service-name"],
        ),
        case(
            "cloud-management-gateway",
            "key not exportable",
            cmg_leaf(),
            cmg(false),
            &["exportable-key"],
        ),
        // sql-server
        case(
            "sql-server",
            "RSA-2048, FQDN in subject",
            Leaf::server("sql1.fleet.test").key(Rsa2048),
            sql(),
            &[],
        ),
        case(
            "sql-server",
            "EC key is below the RSA limit",
            Leaf::server("sql1.fleet.test"),
            sql(),
            &[],
        ),
        case(
            "sql-server",
            "RSA-4096",
            Leaf::server("sql1.fleet.test").key(Rsa4096),
            sql(),
            &["key-max-2048"],
        ),
        case(
            "sql-server",
            "FQDN in the SAN only",
            Leaf::server("sql").dns(&["sql1.fleet.test"]),
            sql(),
            &["subject-intranet-fqdn"],
        ),
        // sql-always-on
        case(
            "sql-always-on",
            "two years, exportable",
            always_on(),
            cluster(true),
            &[],
        ),
        case(
            "sql-always-on",
            "one year",
            always_on().days(365),
            cluster(true),
            &["validity-2-years"],
        ),
        case(
            "sql-always-on",
            "RSA-3072",
            always_on().key(Rsa3072),
            cluster(true),
            &["key-max-2048"],
        ),
        case(
            "sql-always-on",
            "not exportable",
            always_on(),
            cluster(false),
            &["exportable-key"],
        ),
        case(
            "sql-always-on",
            "node name, not the cluster's",
            always_on().cn("sql1.fleet.test"),
            cluster(true),
            &["subject-intranet-fqdn"],
        ),
        // site-system-monitoring
        case(
            "site-system-monitoring",
            "one SAN value",
            Leaf::new().cn("mp1.fleet.test").dns(&["mp1.fleet.test"]),
            ctx(),
            &[],
        ),
        case(
            "site-system-monitoring",
            "server EKU only",
            Leaf::new().eku(&[SERVER_AUTH]),
            ctx(),
            &["eku-client-auth"],
        ),
        case(
            "site-system-monitoring",
            "no EKU",
            Leaf::new().eku(&[]),
            ctx(),
            &["eku-client-auth"],
        ),
        case(
            "site-system-monitoring",
            "RSA-4096",
            Leaf::new().key(Rsa4096),
            ctx(),
            &["key-max-2048"],
        ),
        case(
            "site-system-monitoring",
            "two SAN values (warning)",
            Leaf::new().dns(&["mp1.fleet.test", "mp1.contoso.com"]),
            ctx(),
            &["first-san-only"],
        ),
        case(
            "site-system-monitoring",
            "no subject, SAN only",
            Leaf::new().no_subject().dns(&["mp1.fleet.test"]),
            ctx(),
            &[],
        ),
        // ndes-policy-module
        case(
            "ndes-policy-module",
            "RSA-2048",
            Leaf::new().key(Rsa2048),
            ctx(),
            &[],
        ),
        case(
            "ndes-policy-module",
            "EC key",
            Leaf::new(),
            ctx(),
            &["key-rsa-1024-or-2048"],
        ),
        case(
            "ndes-policy-module",
            "RSA-4096",
            Leaf::new().key(Rsa4096),
            ctx(),
            &["key-rsa-1024-or-2048"],
        ),
        case(
            "ndes-policy-module",
            "server EKU",
            Leaf::new().key(Rsa2048).eku(&[SERVER_AUTH]),
            ctx(),
            &["eku-client-auth"],
        ),
        // distribution-point
        case(
            "distribution-point",
            "PKCS#12 with the key",
            Leaf::new().key(Rsa2048),
            p12(),
            &[],
        ),
        case(
            "distribution-point",
            "RSA-3072",
            Leaf::new().key(Rsa3072),
            p12(),
            &["key-max-2048"],
        ),
        case(
            "distribution-point",
            "PKCS#12 without the key",
            Leaf::new(),
            exported(Some(InputFormat::Pkcs12), None),
            &["pkcs12-export"],
        ),
        case(
            "distribution-point",
            "template forbids export",
            Leaf::new(),
            exported(None, Some(false)),
            &["exportable-key"],
        ),
        // proxy-web-server
        case(
            "proxy-web-server",
            "both EKUs, name in SAN",
            Leaf::new()
                .cn("proxy")
                .dns(&["proxy.contoso.com"])
                .eku(&[SERVER_AUTH, CLIENT_AUTH]),
            proxy(),
            &[],
        ),
        case(
            "proxy-web-server",
            "server EKU only",
            Leaf::server("proxy.contoso.com"),
            proxy(),
            &["eku-client-auth"],
        ),
        case(
            "proxy-web-server",
            "client EKU only",
            Leaf::new().cn("proxy.contoso.com"),
            proxy(),
            &["eku-server-auth"],
        ),
        case(
            "proxy-web-server",
            "internet name missing",
            Leaf::new()
                .cn("proxy.fleet.test")
                .eku(&[SERVER_AUTH, CLIENT_AUTH]),
            proxy(),
            &["internet-fqdn"],
        ),
        // windows-client
        case(
            "windows-client",
            "RSA with a0, CN = FQDN of PC1",
            Leaf::new().key(Rsa4096),
            pc1(),
            &[],
        ),
        case(
            "windows-client",
            "SAN only, no subject",
            Leaf::new()
                .key(Rsa2048)
                .no_subject()
                .dns(&["pc1.fleet.test"]),
            pc1(),
            &[],
        ),
        case(
            "windows-client",
            "RSA without keyEncipherment",
            Leaf::new().key(Rsa2048).ku(&[DigitalSignature]),
            pc1(),
            &["ku-digital-signature-key-encipherment"],
        ),
        case(
            "windows-client",
            "another computer's name",
            Leaf::new().key(Rsa2048).cn("pc2.fleet.test"),
            pc1(),
            &["subject-computer-name"],
        ),
        case(
            "windows-client",
            "two SAN values (warning)",
            Leaf::new()
                .key(Rsa2048)
                .dns(&["pc1.fleet.test", "pc1.contoso.com"]),
            pc1(),
            &["first-san-only"],
        ),
        case(
            "windows-client",
            "EC key: keyEncipherment n/a (warning)",
            Leaf::new().ku(&[DigitalSignature]),
            pc1(),
            &["ku-digital-signature-key-encipherment"],
        ),
        case(
            "windows-client",
            "EC key without digitalSignature",
            Leaf::new().ku(&[KeyAgreement]),
            pc1(),
            &["ku-digital-signature-key-encipherment"],
        ),
        // task-sequence-media
        case(
            "task-sequence-media",
            "PKCS#12 with the key",
            Leaf::new().key(Rsa2048),
            p12(),
            &[],
        ),
        case(
            "task-sequence-media",
            "RSA-4096",
            Leaf::new().key(Rsa4096),
            p12(),
            &["key-max-2048"],
        ),
        case(
            "task-sequence-media",
            "no EKU",
            Leaf::new().eku(&[]),
            p12(),
            &["eku-client-auth"],
        ),
        case(
            "task-sequence-media",
            "not exportable",
            Leaf::new(),
            exported(None, Some(false)),
            &["exportable-key"],
        ),
        // macos-client
        case(
            "macos-client",
            "subject, no SAN",
            Leaf::new().cn("mac1.fleet.test"),
            ctx(),
            &[],
        ),
        case(
            "macos-client",
            "SAN present",
            Leaf::new().cn("mac1.fleet.test").dns(&["mac1.fleet.test"]),
            ctx(),
            &["no-san"],
        ),
        case(
            "macos-client",
            "RSA-3072",
            Leaf::new().key(Rsa3072),
            ctx(),
            &["key-max-2048"],
        ),
        case(
            "macos-client",
            "SAN instead of a subject",
            Leaf::new().no_subject().dns(&["mac1.fleet.test"]),
            ctx(),
            &["unique-subject", "no-san"],
        ),
        // mobile-device
        case(
            "mobile-device",
            "DER file",
            Leaf::new().cn("phone1"),
            der(),
            &[],
        ),
        case(
            "mobile-device",
            "PEM file",
            Leaf::new().cn("phone1"),
            exported(Some(InputFormat::Pem), None),
            &["der-encoding"],
        ),
        case(
            "mobile-device",
            "RSA-4096",
            Leaf::new().key(Rsa4096),
            der(),
            &["key-max-2048"],
        ),
        case(
            "mobile-device",
            "PKCS#12 file",
            Leaf::new(),
            exported(Some(InputFormat::Pkcs12), Some(true)),
            &["der-encoding"],
        ),
        // root-ca
        case(
            "root-ca",
            "self-signed CA",
            Leaf::new().cn("Root").ca(true).key(EcdsaP384),
            ctx(),
            &[],
        ),
        case(
            "root-ca",
            "intermediate",
            Leaf::new().cn("Issuing CA").ca(false),
            ctx(),
            &["self-signed"],
        ),
        case(
            "root-ca",
            "no keyCertSign",
            Leaf::new().cn("Root").ca(true).ku(&[CrlSign]),
            ctx(),
            &["ca-key-cert-sign"],
        ),
        case(
            "root-ca",
            "self-signed end entity",
            Leaf::new().cn("Root").self_signed().ku(&[KeyCertSign]),
            ctx(),
            &["ca-basic-constraints"],
        ),
    ]
}

#[test]
fn every_profile_passes_and_fails_as_the_table_says() {
    let cases = cases();
    let mut problems = Vec::new();
    for c in &cases {
        let p = profile(c.profile).expect("profile");
        let facts = c.leaf.facts();
        let r = check(p, &facts, &c.ctx);
        assert_eq!(r.findings.len(), p.rules.len(), "one finding per rule");
        assert!(
            r.findings
                .iter()
                .zip(&p.rules)
                .all(|(f, rule)| f.rule == rule.id)
        );
        let got = failing(&r);
        if got != c.fails {
            problems.push(format!(
                "{} / {}: expected {:?}, got {:?}\n{:#?}",
                c.profile, c.label, c.fails, got, r.findings
            ));
            continue;
        }
        // Compliant exactly when no failed rule is an error.
        let errors = r
            .findings
            .iter()
            .any(|f| f.status == Status::Fail && f.severity == Severity::Error);
        assert_eq!(r.compliant(), !errors, "{} / {}", c.profile, c.label);
        for f in r.failures().iter().chain(r.warnings().iter()) {
            assert!(!f.found.is_empty() && !f.advice.is_empty(), "{f:?}");
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    // The acceptance bar: every profile has a compliant case and two cases that fail one rule.
    for p in profiles() {
        let mine: Vec<&Case> = cases.iter().filter(|c| c.profile == p.name).collect();
        assert!(
            mine.iter().any(|c| c.fails.is_empty()),
            "{}: no compliant case",
            p.name
        );
        let single: Vec<&str> = mine
            .iter()
            .filter(|c| c.fails.len() == 1)
            .map(|c| c.fails[0])
            .collect();
        assert!(
            single.len() >= 2,
            "{}: fewer than two single-rule failures",
            p.name
        );
    }
}

#[test]
fn warnings_do_not_break_compliance() {
    let p = profile("windows-client").expect("profile");
    let ec = Leaf::new().ku(&[DigitalSignature]).facts();
    let r = check(
        p,
        &ec,
        &Context {
            computer_name: opt("pc1"),
            ..ctx()
        },
    );
    assert!(r.compliant());
    let w = r.warnings();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].rule, "ku-digital-signature-key-encipherment");
    assert!(
        w[0].advice.contains("does not apply to an EC key"),
        "{}",
        w[0].advice
    );

    let p = profile("site-system-monitoring").expect("profile");
    let two = Leaf::new().dns(&["a.fleet.test", "b.fleet.test"]).facts();
    let r = check(p, &two, &ctx());
    assert!(r.compliant() && r.failures().is_empty());
    let f = &r.warnings()[0];
    assert!(
        f.found
            .contains("only the first, DNS:a.fleet.test, is used"),
        "{}",
        f.found
    );
}

#[test]
fn missing_context_is_unverified_and_names_the_option() {
    let facts = Leaf::server("mp.fleet.test").facts();
    let status = |p: &str, ctx: &Context, rule: &str| {
        let r = check(profile(p).expect("profile"), &facts, ctx);
        let f = r
            .findings
            .iter()
            .find(|f| f.rule == rule)
            .expect("rule")
            .clone();
        (f.status, f.advice)
    };
    let (s, advice) = status("site-system-https", &ctx(), "intranet-fqdn");
    assert_eq!(s, Status::Unverified);
    assert!(
        advice.contains("--intranet-fqdn") && advice.contains("--internet-fqdn"),
        "{advice}"
    );
    assert_eq!(
        status("site-system-https", &ctx(), "internet-fqdn").0,
        Status::Unverified
    );
    // One name configured: the other rule does not apply.
    let intranet = site(Some("mp.fleet.test"), None);
    assert_eq!(
        status("site-system-https", &intranet, "internet-fqdn").0,
        Status::NotApplicable
    );
    assert_eq!(
        status("site-system-https", &intranet, "intranet-fqdn").0,
        Status::Pass
    );
    let internet = site(None, Some("mp.contoso.com"));
    assert_eq!(
        status("site-system-https", &internet, "intranet-fqdn").0,
        Status::NotApplicable
    );
    // The seed allows the computer's name instead of the intranet FQDN.
    let by_name = Context {
        computer_name: opt("mp"),
        ..ctx()
    };
    let facts_short = Leaf::server("MP").facts();
    let r = check(
        profile("site-system-https").expect("p"),
        &facts_short,
        &by_name,
    );
    assert_eq!(r.findings[1].status, Status::Pass, "{:?}", r.findings[1]);

    let (s, advice) = status("sql-server", &ctx(), "subject-intranet-fqdn");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("--intranet-fqdn"));
    let (s, advice) = status("sql-always-on", &ctx(), "subject-intranet-fqdn");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("cluster"), "{advice}");
    let (s, advice) = status("cloud-management-gateway", &ctx(), "cn-service-name");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("--service-name"));
    let (s, advice) = status("cloud-management-gateway", &ctx(), "exportable-key");
    assert_eq!(s, Status::Unverified);
    assert!(
        advice.contains("PKCS#12") && advice.contains("--exportable"),
        "{advice}"
    );
    let (s, advice) = status("proxy-web-server", &ctx(), "internet-fqdn");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("--internet-fqdn"));
    let (s, advice) = status("windows-client", &ctx(), "subject-computer-name");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("--computer-name"));
    let (s, advice) = status("mobile-device", &ctx(), "der-encoding");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("DER"));
    let pem = exported(Some(InputFormat::Pem), None);
    let (s, advice) = status("distribution-point", &pem, "pkcs12-export");
    assert_eq!(s, Status::Unverified);
    assert!(advice.contains("openssl pkcs12 -export"), "{advice}");
    // A planned certificate: self-signed unknown.
    let mut planned = Leaf::new().ca(true).facts();
    planned.self_signed = None;
    let r = check(profile("root-ca").expect("p"), &planned, &ctx());
    assert_eq!(r.unverified().len(), 1);
    assert!(r.compliant());
}

#[test]
fn findings_say_what_was_found() {
    let found = |p: &str, leaf: Leaf, ctx: &Context, rule: &str| {
        let r = check(profile(p).expect("p"), &leaf.facts(), ctx);
        r.findings
            .iter()
            .find(|f| f.rule == rule)
            .expect("rule")
            .found
            .clone()
    };
    assert_eq!(
        found(
            "sql-server",
            Leaf::server("a").key(Rsa4096),
            &ctx(),
            "key-max-2048"
        ),
        "RSA-4096 (more than 2048 bits)"
    );
    let ec = found("sql-server", Leaf::server("a"), &ctx(), "key-max-2048");
    assert!(
        ec.starts_with("ECDSA P-256") && ec.contains("far below"),
        "{ec}"
    );
    assert_eq!(
        found("sql-server", Leaf::new(), &ctx(), "eku-server-auth"),
        "EKU: client-auth only"
    );
    assert_eq!(
        found(
            "sql-server",
            Leaf::new().eku(&[]),
            &ctx(),
            "eku-server-auth"
        ),
        "no Extended Key Usage extension"
    );
    let ndes = found(
        "ndes-policy-module",
        Leaf::new(),
        &ctx(),
        "key-rsa-1024-or-2048",
    );
    assert!(ndes.contains("RSA key lengths"), "{ndes}");
    let sql = found(
        "sql-server",
        Leaf::server("sql").dns(&["sql1.fleet.test"]),
        &site(Some("sql1.fleet.test"), None),
        "subject-intranet-fqdn",
    );
    assert!(
        sql.contains("in the SAN, but the seed requires the Subject Name"),
        "{sql}"
    );
    let https = found(
        "site-system-https",
        Leaf::server("other.fleet.test"),
        &site(Some("srv1.fleet.test"), None),
        "intranet-fqdn",
    );
    assert!(
        https.contains("srv1.fleet.test") && https.contains("CN=other.fleet.test"),
        "{https}"
    );
    let v = found(
        "sql-always-on",
        Leaf::new().days(365),
        &ctx(),
        "validity-2-years",
    );
    assert!(v.starts_with("validity 365 days"), "{v}");
}

#[test]
fn the_test_root_and_sha2_pass() {
    let r = check(profile("root-ca").expect("p"), &facts_of(&CA.der), &ctx());
    assert!(failing(&r).is_empty(), "{:#?}", r.findings);
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f.status == Status::Pass)
            .count(),
        r.findings.len()
    );
}

#[test]
fn reports_serialize_with_stable_names() {
    let r = check(
        profile("mobile-device").expect("p"),
        &Leaf::new().facts(),
        &exported(Some(InputFormat::Pem), None),
    );
    let v = serde_json::to_value(&r).expect("json");
    assert_eq!(v["profile"], "mobile-device");
    let der = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "der-encoding")
        .expect("der")
        .clone();
    assert_eq!(der["status"], "fail");
    assert_eq!(der["severity"], "error");
    let p = serde_json::to_value(profile("windows-client").expect("p")).expect("json");
    assert_eq!(p["rules"][1]["check"]["kind"], "key-usage-a0");
    assert_eq!(
        serde_json::to_value(Status::NotApplicable).expect("json"),
        "not-applicable"
    );
}
