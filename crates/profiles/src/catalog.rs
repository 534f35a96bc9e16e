//! The 13 role profiles of SPEC §7, one per section of seed 002 ("PKI certificate requirements
//! for Configuration Manager"), each rule quoting the seed.

use crate::ProfileError;
use crate::rules::{Check, Fqdn, Profile, Rule, Severity};
use fleetpki_model::oid::{CLIENT_AUTH, SERVER_AUTH};
use std::sync::LazyLock;

// The seed's words, markdown removed. Shared sentences are quoted once.
const EKU_SERVER: &str =
    "The Enhanced Key Usage value must contain Server Authentication (1.3.6.1.5.5.7.3.1)";
const EKU_CLIENT: &str =
    "The Enhanced Key Usage value must contain Client Authentication (1.3.6.1.5.5.7.3.2)";
const KEY_MAX_2048: &str = "Maximum supported key length is 2,048 bits.";
const EXPORTABLE: &str = "The private key must be exportable.";
const SHA2: &str = "Issue new server and client authentication certificates that are signed with SHA-2, which includes SHA-256 and SHA-512. [...] Windows doesn't trust certificates signed with SHA-1.";
const WITHIN_VALIDITY: &str = "All profiles: signed with SHA-2; within validity (SPEC §7). \"When you have an environment that's HTTPS-only, the task sequence media must have a valid certificate.\"";
const UNIQUE_SUBJECT_OR_SAN: &str = "Computers must have a unique value in the Subject Name field or in the Subject Alternative Name field.";
const FIRST_SAN_ONLY: &str =
    "If you use multiple values for the Subject Alternative Name, it only uses the first value.";

const fn rule(id: &'static str, requirement: &'static str, check: Check) -> Rule {
    Rule {
        id,
        severity: Severity::Error,
        requirement,
        check,
    }
}

const fn warning(id: &'static str, requirement: &'static str, check: Check) -> Rule {
    Rule {
        id,
        severity: Severity::Warning,
        requirement,
        check,
    }
}

fn eku_server() -> Rule {
    rule(
        "eku-server-auth",
        EKU_SERVER,
        Check::Eku { oid: SERVER_AUTH },
    )
}

fn eku_client() -> Rule {
    rule(
        "eku-client-auth",
        EKU_CLIENT,
        Check::Eku { oid: CLIENT_AUTH },
    )
}

fn key_max_2048() -> Rule {
    rule(
        "key-max-2048",
        KEY_MAX_2048,
        Check::KeyMaxBits { bits: 2048 },
    )
}

fn exportable() -> Rule {
    rule("exportable-key", EXPORTABLE, Check::ExportableKey)
}

fn pkcs12(requirement: &'static str) -> Rule {
    rule("pkcs12-export", requirement, Check::Pkcs12Export)
}

/// `sha2-signature` and `within-validity`, which every profile ends with.
fn common(sha2: Severity) -> [Rule; 2] {
    [
        Rule {
            id: "sha2-signature",
            severity: sha2,
            requirement: SHA2,
            check: Check::Sha2Signature,
        },
        rule("within-validity", WITHIN_VALIDITY, Check::WithinValidity),
    ]
}

fn section(
    name: &'static str,
    title: &'static str,
    applies_to: &'static str,
    mut rules: Vec<Rule>,
    sha2: Severity,
) -> Profile {
    rules.extend(common(sha2));
    Profile {
        name,
        title,
        applies_to,
        rules,
    }
}

static PROFILES: LazyLock<Vec<Profile>> = LazyLock::new(build);

fn build() -> Vec<Profile> {
    use Severity::{Error, Warning};
    vec![
        section(
            "site-system-https",
            "Site systems that run IIS and support HTTPS client connections",
            "Management point, distribution point, software update point, state migration point, enrollment point, enrollment proxy point, certificate registration point",
            vec![
                eku_server(),
                rule(
                    "intranet-fqdn",
                    "If the site system accepts connections from the intranet, the Subject Name or Subject Alternative Name must contain either the intranet FQDN (recommended) or the computer's name, depending on how the site system is set up. If the site system accepts connections from both the internet and the intranet, both the internet FQDN and the intranet FQDN (or computer name) must be specified. Use the ampersand (&) symbol delimiter between the two names.",
                    Check::SiteSystemName {
                        fqdn: Fqdn::Intranet,
                    },
                ),
                rule(
                    "internet-fqdn",
                    "If the site system accepts connections from the internet, the Subject Name or Subject Alternative Name must contain the internet fully qualified domain name (FQDN).",
                    Check::SiteSystemName {
                        fqdn: Fqdn::Internet,
                    },
                ),
            ],
            Error,
        ),
        section(
            "cloud-management-gateway",
            "Cloud management gateway (CMG)",
            "The CMG service in Azure, authenticating to Configuration Manager clients",
            vec![
                eku_server(),
                rule(
                    "cn-service-name",
                    "The Subject Name must contain a customer-defined service name as the Common Name for the specific instance of the cloud management gateway.",
                    Check::CnServiceName,
                ),
                exportable(),
                rule(
                    "key-rsa-2048-or-4096",
                    "Supported key lengths: 2048-bit or 4096-bit",
                    Check::RsaKeySizes {
                        sizes: &[2048, 4096],
                    },
                ),
                pkcs12(
                    "Export this certificate in a Public Key Certificate Standard (PKCS #12) format. You need to know the password, so that you can import the certificate when you create the CMG.",
                ),
            ],
            Error,
        ),
        section(
            "sql-server",
            "Site system servers that run Microsoft SQL Server",
            "Site system servers running SQL Server (server-to-server authentication)",
            vec![
                eku_server(),
                rule(
                    "subject-intranet-fqdn",
                    "The Subject Name must contain the intranet fully qualified domain name (FQDN)",
                    Check::NameInSubject {
                        fqdn: Fqdn::Intranet,
                    },
                ),
                key_max_2048(),
            ],
            Error,
        ),
        section(
            "sql-always-on",
            "SQL Server Always On failover cluster instance",
            "Every node of a SQL Server Always On failover cluster instance (requested on one node, exported and imported on the others)",
            vec![
                eku_server(),
                rule(
                    "subject-intranet-fqdn",
                    "The Subject Name must contain the intranet fully qualified domain name (FQDN) of the cluster",
                    Check::NameInSubject {
                        fqdn: Fqdn::Cluster,
                    },
                ),
                exportable(),
                rule(
                    "validity-2-years",
                    "The certificate must have a validity period of at least two years when you configure Configuration Manager to use the failover cluster instance",
                    Check::ValidityAtLeastDays { days: 730 },
                ),
                key_max_2048(),
            ],
            Error,
        ),
        section(
            "site-system-monitoring",
            "Site system monitoring",
            "Management point, state migration point (even without the Configuration Manager client)",
            vec![
                eku_client(),
                rule(
                    "unique-subject-or-san",
                    UNIQUE_SUBJECT_OR_SAN,
                    Check::SubjectOrSanPresent,
                ),
                warning("first-san-only", FIRST_SAN_ONLY, Check::FirstSanOnly),
                key_max_2048(),
            ],
            Error,
        ),
        section(
            "ndes-policy-module",
            "Servers running the Configuration Manager Policy Module with the Network Device Enrollment Service (NDES) role service",
            "Servers running the Configuration Manager Policy Module with NDES (one certificate may serve several)",
            vec![
                eku_client(),
                rule(
                    "key-rsa-1024-or-2048",
                    "Supported key lengths: 1,024 bits and 2,048 bits.",
                    Check::RsaKeySizes {
                        sizes: &[1024, 2048],
                    },
                ),
            ],
            Error,
        ),
        section(
            "distribution-point",
            "Site systems that have a distribution point installed",
            "Distribution points: status messages to HTTPS management points, and PXE-enabled OS deployment",
            vec![
                eku_client(),
                exportable(),
                key_max_2048(),
                pkcs12(
                    "Export this certificate in a Public Key Certificate Standard (PKCS #12) format. You need to know the password, so that you can import the certificate to the distribution point properties.",
                ),
            ],
            Error,
        ),
        section(
            "proxy-web-server",
            "Proxy web servers for internet-based client management",
            "Proxy web servers that terminate SSL (bridging) for internet-based management points, distribution points and software update points",
            vec![
                rule(
                    "eku-server-auth",
                    "Certificate purpose: Server authentication and Client authentication",
                    Check::Eku { oid: SERVER_AUTH },
                ),
                rule(
                    "eku-client-auth",
                    "Certificate purpose: Server authentication and Client authentication",
                    Check::Eku { oid: CLIENT_AUTH },
                ),
                rule(
                    "internet-fqdn",
                    "Internet FQDN in the Subject Name or Subject Alternative Name field.",
                    Check::NameInSubjectOrSan {
                        fqdn: Fqdn::Internet,
                    },
                ),
            ],
            Error,
        ),
        section(
            "windows-client",
            "Windows client computers",
            "Windows client computers authenticating to HTTPS site systems",
            vec![
                eku_client(),
                rule(
                    "ku-digital-signature-key-encipherment",
                    "The Key Usage value must contain Digital Signature, Key Encipherment (a0)",
                    Check::KeyUsageA0,
                ),
                rule(
                    "unique-subject-or-san",
                    "Client computers must have a unique value in the Subject Name or Subject Alternative Name field.",
                    Check::SubjectOrSanPresent,
                ),
                rule(
                    "subject-computer-name",
                    "If used, the Subject Name field must contain the local computer name unless an alternative certificate selection criteria is specified.",
                    Check::SubjectComputerName,
                ),
                warning("first-san-only", FIRST_SAN_ONLY, Check::FirstSanOnly),
            ],
            Error,
        ),
        section(
            "task-sequence-media",
            "Task sequence media for deploying operating systems",
            "Boot and prestaged media for OS deployment (the same certificate may serve all media)",
            vec![
                eku_client(),
                exportable(),
                key_max_2048(),
                pkcs12(
                    "Export this certificate in a Public Key Certificate Standard (PKCS #12) format. You need to know the password, so that you can import the certificate when creating the task sequence media.",
                ),
            ],
            Error,
        ),
        section(
            "macos-client",
            "macOS client computers",
            "macOS client computers authenticating to management points and distribution points",
            vec![
                eku_client(),
                rule(
                    "unique-subject",
                    "The certificate Subject value must be unique. For example, specify the FQDN of the computer.",
                    Check::SubjectPresent,
                ),
                rule(
                    "no-san",
                    "The Subject Alternative Name field isn't supported.",
                    Check::NoSan,
                ),
                key_max_2048(),
            ],
            Error,
        ),
        section(
            "mobile-device",
            "Mobile device clients",
            "Mobile device clients authenticating to management points and distribution points",
            vec![
                eku_client(),
                key_max_2048(),
                rule(
                    "der-encoding",
                    "These certificates must be in Distinguished Encoding Rules (DER) encoded binary X.509 format. Base64 encoded X.509 format isn't supported.",
                    Check::DerEncoding,
                ),
            ],
            Error,
        ),
        section(
            "root-ca",
            "Root certification authority (CA) certificates",
            "OS deployment, client certificate authentication, mobile device enrollment",
            vec![
                rule(
                    "ca-basic-constraints",
                    "This certificate is a standard root CA certificate.",
                    Check::CaBasicConstraints,
                ),
                rule(
                    "ca-key-cert-sign",
                    "This certificate is a standard root CA certificate.",
                    Check::CaKeyCertSign,
                ),
                rule(
                    "self-signed",
                    "Certificate purpose: Certificate chain to a trusted source",
                    Check::SelfSigned,
                ),
            ],
            // Nobody verifies a root's signature on itself (trust comes from its presence in
            // the store), so a SHA-1 self-signature is worth a warning, not a refusal.
            Warning,
        ),
    ]
}

/// The 13 profiles, in the seed's order.
pub fn profiles() -> &'static [Profile] {
    &PROFILES
}

/// The profile called `name`; an unknown name is an error on `--profile` listing the known ones.
pub fn profile(name: &str) -> Result<&'static Profile, ProfileError> {
    let wanted = name.trim();
    profiles()
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| ProfileError::UnknownProfile {
            name: name.to_string(),
            known: profiles()
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_profiles_with_unique_kebab_ids() {
        let names: Vec<&str> = profiles().iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "site-system-https",
                "cloud-management-gateway",
                "sql-server",
                "sql-always-on",
                "site-system-monitoring",
                "ndes-policy-module",
                "distribution-point",
                "proxy-web-server",
                "windows-client",
                "task-sequence-media",
                "macos-client",
                "mobile-device",
                "root-ca",
            ]
        );
        for p in profiles() {
            let ids: Vec<&str> = p.rules.iter().map(|r| r.id).collect();
            for (i, id) in ids.iter().enumerate() {
                assert!(!ids[..i].contains(id), "{}: duplicate {id}", p.name);
                assert!(
                    id.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{id}"
                );
            }
            assert!(
                ids.ends_with(&["sha2-signature", "within-validity"]),
                "{}",
                p.name
            );
            assert!(!p.title.is_empty() && !p.applies_to.is_empty());
        }
    }

    #[test]
    fn unknown_profile_lists_the_known() {
        assert_eq!(profile(" Windows-Client").unwrap().name, "windows-client");
        let e = profile("nope").unwrap_err();
        assert_eq!(e.field(), "--profile");
        assert!(
            e.to_string()
                .contains("windows-client, task-sequence-media"),
            "{e}"
        );
    }
}
