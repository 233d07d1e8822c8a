//! Built-in detectors and the scanner that runs the enabled ones over a text.
//!
//! Every built-in detector is a linear, hand-written scanner keyed on a cheap anchor
//! (a digit run, an `@`, a `:`, a literal prefix found with memchr or [`automaton`]), then
//! validated (Luhn, mod-97, SSN area rules, ...). No detector runs a regex over the whole text.

pub mod automaton;
pub mod custom;
pub mod decode;
pub mod email;
pub mod huffman;
pub mod injection_model;
pub mod ipv6;
pub mod keywords;
pub mod normalize;
pub mod numeric;
pub mod prefilter;
pub mod prompt_injection;
pub mod secrets;

/// One detected entity: a byte range of the scanned text, always on char boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub detector: DetectorId,
    pub start: usize,
    pub end: usize,
}

macro_rules! detectors {
    ($($variant:ident => $name:literal, $placeholder:literal;)*) => {
        /// The built-in detectors, by the exact names policies use.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DetectorId { $($variant),* }

        impl DetectorId {
            pub const ALL: &'static [DetectorId] = &[$(DetectorId::$variant),*];

            /// The name used in policy documents and audit records.
            pub fn name(self) -> &'static str {
                match self { $(DetectorId::$variant => $name),* }
            }

            /// The typed placeholder used by the `placeholder` redaction style.
            pub fn placeholder(self) -> &'static str {
                match self { $(DetectorId::$variant => $placeholder),* }
            }

            pub fn from_name(name: &str) -> Option<DetectorId> {
                match name { $($name => Some(DetectorId::$variant),)* _ => None }
            }
        }
    };
}

detectors! {
    Email => "email", "[EMAIL]";
    Phone => "phone", "[PHONE]";
    CreditCard => "credit_card", "[CREDIT_CARD]";
    UsSsn => "us_ssn", "[US_SSN]";
    Iban => "iban", "[IBAN]";
    Ipv4 => "ipv4", "[IPV4]";
    Ipv6 => "ipv6", "[IPV6]";
    UkNino => "uk_nino", "[UK_NINO]";
    CaSin => "ca_sin", "[CA_SIN]";
    InAadhaar => "in_aadhaar", "[IN_AADHAAR]";
    InPan => "in_pan", "[IN_PAN]";
    FrNir => "fr_nir", "[FR_NIR]";
    DeTaxId => "de_tax_id", "[DE_TAX_ID]";
    EsDniNie => "es_dni_nie", "[ES_DNI_NIE]";
    ItFiscalCode => "it_fiscal_code", "[IT_FISCAL_CODE]";
    BrCpf => "br_cpf", "[BR_CPF]";
    AuTfn => "au_tfn", "[AU_TFN]";
    AwsAccessKey => "aws_access_key", "[AWS_ACCESS_KEY]";
    GithubToken => "github_token", "[GITHUB_TOKEN]";
    OpenaiKey => "openai_key", "[OPENAI_KEY]";
    AnthropicKey => "anthropic_key", "[ANTHROPIC_KEY]";
    SlackToken => "slack_token", "[SLACK_TOKEN]";
    GoogleApiKey => "google_api_key", "[GOOGLE_API_KEY]";
    StripeKey => "stripe_key", "[STRIPE_KEY]";
    PrivateKey => "private_key", "[PRIVATE_KEY]";
    Jwt => "jwt", "[JWT]";
    GitlabToken => "gitlab_token", "[GITLAB_TOKEN]";
    NpmToken => "npm_token", "[NPM_TOKEN]";
    HuggingfaceToken => "huggingface_token", "[HUGGINGFACE_TOKEN]";
    SendgridKey => "sendgrid_key", "[SENDGRID_KEY]";
    TwilioKey => "twilio_key", "[TWILIO_KEY]";
    MailgunKey => "mailgun_key", "[MAILGUN_KEY]";
    ShopifyToken => "shopify_token", "[SHOPIFY_TOKEN]";
    DigitaloceanToken => "digitalocean_token", "[DIGITALOCEAN_TOKEN]";
    AwsSecretKey => "aws_secret_key", "[AWS_SECRET_KEY]";
    AwsSessionToken => "aws_session_token", "[AWS_SESSION_TOKEN]";
    AzureStorageKey => "azure_storage_key", "[AZURE_STORAGE_KEY]";
    GcpServiceAccount => "gcp_service_account", "[GCP_SERVICE_ACCOUNT]";
    UrlSignature => "url_signature", "[URL_SIGNATURE]";
    UrlCredentials => "url_credentials", "[PASSWORD]";
    HttpAuth => "http_auth", "[CREDENTIALS]";
    SecretAssignment => "secret_assignment", "[SECRET]";
    PromptInjection => "prompt_injection", "[PROMPT_INJECTION]";
}

/// A set of enabled detectors (a bit per [`DetectorId`]; room for 64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorSet(u64);

impl DetectorSet {
    pub const EMPTY: DetectorSet = DetectorSet(0);

    pub fn all() -> DetectorSet {
        DetectorId::ALL
            .iter()
            .fold(DetectorSet::EMPTY, |s, d| s.with(*d))
    }

    pub fn with(self, d: DetectorId) -> DetectorSet {
        DetectorSet(self.0 | (1 << d as u64))
    }

    pub fn contains(self, d: DetectorId) -> bool {
        self.0 & (1 << d as u64) != 0
    }

    pub fn without(self, d: DetectorId) -> DetectorSet {
        DetectorSet(self.0 & !(1 << d as u32))
    }

    pub fn union(self, other: DetectorSet) -> DetectorSet {
        DetectorSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = DetectorId> {
        DetectorId::ALL
            .iter()
            .copied()
            .filter(move |d| self.contains(*d))
    }
}

/// Runs every enabled built-in detector over `text`, appending findings to `out`.
///
/// Findings come in no particular order and may overlap (e.g. an SSN-shaped run inside a
/// phone number); callers sort and merge.
pub fn scan(text: &str, enabled: DetectorSet, out: &mut Vec<Finding>) {
    scan_with(text, enabled, None, out);
}

/// [`scan`], with the secret prefixes' hits already found by the policy's prefilter
/// ([`prefilter`]) when `secret_anchors` is given (the secrets' own automaton runs otherwise).
pub(crate) fn scan_with(
    text: &str,
    enabled: DetectorSet,
    secret_anchors: Option<&[secrets::Anchor]>,
    out: &mut Vec<Finding>,
) {
    if enabled.is_empty() || text.is_empty() {
        return;
    }
    numeric::scan(text, enabled, out);
    if enabled.contains(DetectorId::Email) {
        email::scan(text, out);
    }
    if enabled.contains(DetectorId::Ipv6) {
        ipv6::scan(text, out);
    }
    match secret_anchors {
        Some(anchors) => secrets::scan_anchors(text, enabled, &mut anchors.iter().copied(), out),
        None => secrets::scan(text, enabled, out),
    }
    if enabled.contains(DetectorId::PromptInjection) {
        let mut found = Vec::new();
        if prompt_injection::assess(text, &mut found) >= prompt_injection::DEFAULT_MIN_SCORE {
            out.extend(found);
        }
    }
}

/// What every detector's tests do with a scanner's findings.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{DetectorId, Finding};

    /// (detector, matched text) for every finding, in order; spans must sit on char boundaries.
    pub(crate) fn found(
        text: &str,
        scan: impl FnOnce(&str, &mut Vec<Finding>),
    ) -> Vec<(DetectorId, &str)> {
        let mut out = Vec::new();
        scan(text, &mut out);
        out.iter()
            .map(|f| {
                assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
                (f.detector, &text[f.start..f.end])
            })
            .collect()
    }

    /// The matched texts of a single-detector scanner, all of which must be `detector`'s.
    pub(crate) fn texts_of(
        text: &str,
        detector: DetectorId,
        scan: impl FnOnce(&str, &mut Vec<Finding>),
    ) -> Vec<&str> {
        found(text, scan)
            .into_iter()
            .map(|(d, t)| {
                assert_eq!(d, detector);
                t
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn names_round_trip() {
        for d in DetectorId::ALL {
            assert_eq!(DetectorId::from_name(d.name()), Some(*d));
        }
        assert_eq!(DetectorId::ALL.len(), 43);
        assert!(DetectorId::ALL.len() <= 64, "DetectorSet has 64 bits");
        assert_eq!(DetectorId::from_name("nope"), None);
    }

    #[test]
    fn set_operations() {
        let s = DetectorSet::EMPTY
            .with(DetectorId::Email)
            .with(DetectorId::Jwt);
        assert!(s.contains(DetectorId::Email));
        assert!(!s.contains(DetectorId::Phone));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(DetectorSet::all().iter().count(), 43);
    }
}
