//! `scone enclave measure|sign|show`: measure, sign and inspect SGX enclaves by hand or
//! in CI, with the same library code the `sign` step uses.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Subcommand, ValueEnum};
use scone::regular_file;
use scone::sgx::measure::{measure_reader, Measurement};
use scone::sgx::output::{check_user_output, write_user_output};
use scone::sgx::sigstruct::{parse_date, source_date, Sigstruct, SigstructParams};
use scone::sgx::SigningKey;

/// The size of a SIGSTRUCT: `show` reads no more.
const SIGSTRUCT_BYTES: u64 = 1808;

/// Subcommands of `scone enclave`.
#[derive(Debug, Subcommand)]
pub enum EnclaveCommand {
    /// Print the MRENCLAVE (64 hex digits) of an .sgxs file.
    Measure {
        /// The .sgxs measurement stream.
        file: PathBuf,
    },
    /// Sign an enclave: write its 1808-byte SIGSTRUCT.
    Sign(SignArgs),
    /// Print every field of a SIGSTRUCT, MRSIGNER, and whether it verifies (exit 1 if not).
    Show {
        /// The SIGSTRUCT file.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Debug or production enclave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// ATTRIBUTES.DEBUG set: debuggable, not for secrets.
    Debug,
    /// ATTRIBUTES.DEBUG clear.
    Production,
}

/// Arguments of `scone enclave sign` (numbers are decimal or 0x-hex).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["sgxs", "enclave_hash"])))]
pub struct SignArgs {
    /// RSA-3072, e = 3 private key (PEM, PKCS#1 or PKCS#8).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// The .sgxs stream to sign (its MRENCLAVE is computed).
    #[arg(long, value_name = "FILE")]
    sgxs: Option<PathBuf>,
    /// The MRENCLAVE to sign (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_hash)]
    enclave_hash: Option<[u8; 32]>,
    /// Where to write the SIGSTRUCT.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// DATE (default: the UTC day of SOURCE_DATE_EPOCH, else 1970-01-01).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date_arg)]
    date: Option<u32>,
    /// Sets the default ATTRIBUTES.FLAGS: MODE64BIT, plus DEBUG in debug mode.
    #[arg(long, value_enum, default_value_t = Mode::Production)]
    mode: Mode,
    /// ATTRIBUTES.FLAGS (overrides --mode).
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    flags: Option<u64>,
    /// ATTRIBUTEMASK.FLAGS (default: all bits).
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    flags_mask: Option<u64>,
    /// ATTRIBUTES.XFRM (default 0x3).
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    xfrm: Option<u64>,
    /// ATTRIBUTEMASK.XFRM (default !0xe4: AVX and AVX-512 state allowed).
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    xfrm_mask: Option<u64>,
    /// MISCSELECT (default 0).
    #[arg(long, value_name = "N", value_parser = parse_u32)]
    miscselect: Option<u32>,
    /// MISCMASK (default 0xffffffff).
    #[arg(long, value_name = "N", value_parser = parse_u32)]
    miscmask: Option<u32>,
    /// ISVPRODID (default 0).
    #[arg(long, value_name = "N", value_parser = parse_u16)]
    isvprodid: Option<u16>,
    /// ISVSVN (default 0).
    #[arg(long, value_name = "N", value_parser = parse_u16)]
    isvsvn: Option<u16>,
    /// VENDOR (default 0; 0x8086 is Intel).
    #[arg(long, value_name = "N", value_parser = parse_u32)]
    vendor: Option<u32>,
}

fn parse_u64(text: &str) -> Result<u64, String> {
    let t = text.trim().replace('_', "");
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    parsed.map_err(|_| format!("{text:?} is not a decimal or 0x-hex number"))
}

/// `--enclave-hash`: 64 hex digits; what is wrong otherwise (a usage error, exit 2).
fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    if let Some((at, c)) = t.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "{c:?} at character {} is not a hex digit (an MRENCLAVE is 64 hex digits)",
            at + 1
        ));
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(t, &mut hash)
        .map_err(|_| format!("an MRENCLAVE is 64 hex digits, this one has {}", t.len()))?;
    Ok(hash)
}

/// `--date YYYY-MM-DD` as BCD (a usage error, exit 2, when invalid).
fn parse_date_arg(text: &str) -> Result<u32, String> {
    parse_date(text).map_err(|e| e.to_string())
}

fn parse_u32(text: &str) -> Result<u32, String> {
    u32::try_from(parse_u64(text)?).map_err(|_| format!("{text} does not fit in 32 bits"))
}

fn parse_u16(text: &str) -> Result<u16, String> {
    u16::try_from(parse_u64(text)?).map_err(|_| format!("{text} does not fit in 16 bits"))
}

/// Runs one `scone enclave` subcommand; returns the process exit code.
pub fn run(cmd: &EnclaveCommand) -> anyhow::Result<i32> {
    match cmd {
        EnclaveCommand::Measure { file } => {
            let m = measure_file(file)?;
            println!("{}", hex::encode(m.mrenclave));
            Ok(0)
        }
        EnclaveCommand::Sign(args) => sign(args),
        EnclaveCommand::Show { file, json } => show(file, *json),
    }
}

/// Refuses what is no regular file (a FIFO would block, `/dev/zero` never
/// end) before it is opened: `path: is a FIFO, not a regular file`.
fn not_regular(path: &Path, e: regular_file::ReadError) -> anyhow::Error {
    anyhow!("{}: {e}", path.display())
}

/// Measures the `.sgxs` file at `path`, a regular file streamed record by record
/// (any size, in constant memory).
fn measure_file(path: &Path) -> anyhow::Result<Measurement> {
    let (file, _) = regular_file::open(path).map_err(|e| not_regular(path, e))?;
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    measure_reader(reader, path).with_context(|| path.display().to_string())
}

/// The SIGSTRUCT at `path`: a regular file of 1808 bytes, read no further.
fn read_sigstruct(path: &Path) -> anyhow::Result<Sigstruct> {
    let meta = regular_file::check(path).map_err(|e| not_regular(path, e))?;
    if meta.len() != SIGSTRUCT_BYTES {
        let e =
            scone::sgx::SgxError::SigstructSize(usize::try_from(meta.len()).unwrap_or(usize::MAX));
        return Err(anyhow!("{}: {e}", path.display()));
    }
    let bytes = regular_file::read(path, SIGSTRUCT_BYTES).map_err(|e| not_regular(path, e))?;
    Sigstruct::from_bytes(&bytes).with_context(|| path.display().to_string())
}

fn sign(args: &SignArgs) -> anyhow::Result<i32> {
    // The output may replace no input: checked first, before the work.
    let mut inputs: Vec<(&str, &Path)> = vec![("--key", &args.key)];
    if let Some(sgxs) = &args.sgxs {
        inputs.push(("--sgxs", sgxs));
    }
    check_user_output(&args.output, &inputs)?;
    let key = SigningKey::load(&args.key)?;
    let enclave_hash = match (&args.sgxs, &args.enclave_hash) {
        (Some(path), _) => measure_file(path)?.mrenclave,
        (None, Some(hash)) => *hash,
        (None, None) => bail!("give --sgxs FILE or --enclave-hash HEX"),
    };
    let date = match args.date {
        Some(date) => date,
        None => source_date()?,
    };
    let mut params = SigstructParams::for_mode(args.mode == Mode::Debug, date);
    params.flags = args.flags.unwrap_or(params.flags);
    params.flags_mask = args.flags_mask.unwrap_or(params.flags_mask);
    params.xfrm = args.xfrm.unwrap_or(params.xfrm);
    params.xfrm_mask = args.xfrm_mask.unwrap_or(params.xfrm_mask);
    params.miscselect = args.miscselect.unwrap_or(params.miscselect);
    params.miscmask = args.miscmask.unwrap_or(params.miscmask);
    params.isvprodid = args.isvprodid.unwrap_or(params.isvprodid);
    params.isvsvn = args.isvsvn.unwrap_or(params.isvsvn);
    params.vendor = args.vendor.unwrap_or(params.vendor);
    let sig = Sigstruct::sign(&key, &params, &enclave_hash)?;
    write_user_output(&args.output, &sig.to_bytes(), &inputs)?;
    for problem in params.launch_problems() {
        eprintln!("warning: {}: {problem}", args.output.display());
    }
    eprintln!(
        "     Signed {} (MRENCLAVE {}, MRSIGNER {})",
        args.output.display(),
        hex::encode(enclave_hash),
        hex::encode(sig.mrsigner())
    );
    Ok(0)
}

fn date_text(bcd: u32) -> String {
    let digits = format!("{bcd:08x}");
    if bcd == 0 {
        "0000-00-00 (no date)".to_string()
    } else if digits.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..])
    } else {
        format!("{bcd:#010x} (not BCD)")
    }
}

/// The fields `show` prints, in the order it prints them (also the JSON keys).
fn fields(sig: &Sigstruct) -> Vec<(&'static str, String)> {
    vec![
        ("header", hex::encode(sig.header())),
        ("vendor", format!("{:#x}", sig.vendor())),
        ("date", date_text(sig.date())),
        ("header2", hex::encode(sig.header2())),
        ("swdefined", format!("{:#x}", sig.swdefined())),
        ("exponent", sig.exponent().to_string()),
        ("miscselect", format!("{:#010x}", sig.miscselect())),
        ("miscmask", format!("{:#010x}", sig.miscmask())),
        ("isvfamilyid", hex::encode(sig.isvfamilyid())),
        ("attributes_flags", format!("{:#018x}", sig.flags())),
        ("attributes_xfrm", format!("{:#018x}", sig.xfrm())),
        ("attributemask_flags", format!("{:#018x}", sig.flags_mask())),
        ("attributemask_xfrm", format!("{:#018x}", sig.xfrm_mask())),
        ("debug", sig.is_debug().to_string()),
        ("enclavehash", hex::encode(sig.enclavehash())),
        ("isvextprodid", hex::encode(sig.isvextprodid())),
        ("isvprodid", sig.isvprodid().to_string()),
        ("isvsvn", sig.isvsvn().to_string()),
        ("mrsigner", hex::encode(sig.mrsigner())),
        ("modulus", hex::encode(sig.modulus())),
        ("signature", hex::encode(sig.signature())),
        ("q1", hex::encode(sig.q1())),
        ("q2", hex::encode(sig.q2())),
    ]
}

fn show(file: &Path, json: bool) -> anyhow::Result<i32> {
    let sig = read_sigstruct(file)?;
    let v = sig.verify();
    let ok = |b: bool| if b { "ok" } else { "FAILED" };
    if json {
        let mut map = serde_json::Map::new();
        for (name, value) in fields(&sig) {
            let value = match name {
                "debug" => serde_json::Value::Bool(sig.is_debug()),
                "exponent" => serde_json::Value::from(sig.exponent()),
                "isvprodid" => serde_json::Value::from(sig.isvprodid()),
                "isvsvn" => serde_json::Value::from(sig.isvsvn()),
                _ => serde_json::Value::String(value),
            };
            map.insert(name.to_string(), value);
        }
        let checks: std::collections::BTreeMap<&str, bool> = [
            ("headers", v.headers),
            ("key", v.key),
            ("q1", v.q1),
            ("q2", v.q2),
            ("signature", v.signature),
        ]
        .into_iter()
        .collect();
        map.insert("verification".to_string(), serde_json::to_value(checks)?);
        map.insert("valid".to_string(), serde_json::Value::Bool(v.is_valid()));
        // Sorted keys whatever serde_json's map order is.
        let sorted: std::collections::BTreeMap<_, _> = map.into_iter().collect();
        println!("{}", serde_json::to_string(&sorted)?);
    } else {
        println!("SIGSTRUCT {}", file.display());
        for (name, value) in fields(&sig) {
            println!("  {name:<20} {value}");
        }
        println!("  {:<20} {}", "headers", ok(v.headers));
        println!("  {:<20} {}", "key (RSA-3072, e=3)", ok(v.key));
        println!("  {:<20} {}", "rsa signature", ok(v.signature));
        println!("  {:<20} {}", "q1", ok(v.q1));
        println!("  {:<20} {}", "q2", ok(v.q2));
    }
    if v.is_valid() {
        eprintln!("   Verified {}", file.display());
        Ok(0)
    } else {
        eprintln!("error: {} does not verify", file.display());
        Ok(1)
    }
}
