//! `mrctl wallet ...`: create, regenerate, list and show btcli-compatible wallets, no daemon needed.
//!
//! Coldkey passwords come from `BT_COLD_PW_<NAME>` when set (scripts, CI), else from a prompt
//! (twice, to catch typos, since a mistyped password locks the key away).

use std::io::{self, Write};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use mapreduce::config::WalletConfig;
use mapreduce::wallet::keypair::MNEMONIC_WORD_COUNTS;
use mapreduce::wallet::{
    Keypair, Wallet, WalletInfo, Zeroizing, expand_tilde, list_wallets, password_env_var,
    password_from_env,
};

#[derive(Debug, Subcommand)]
pub enum WalletCmd {
    /// Create a new coldkey (password-encrypted unless --no-password) and print its mnemonic once.
    NewColdkey {
        /// Mnemonic length: 12, 15, 18, 21 or 24 words.
        #[arg(long, alias = "n_words", default_value_t = 12, value_parser = parse_n_words)]
        n_words: usize,
        /// Store the coldkey unencrypted (only for throwaway test wallets).
        #[arg(long, alias = "no_password")]
        no_password: bool,
        /// Replace an existing coldkey (it is lost unless you have its mnemonic).
        #[arg(long)]
        overwrite: bool,
    },
    /// Create a new hotkey (plaintext, like btcli) and print its mnemonic once.
    NewHotkey {
        /// Mnemonic length: 12, 15, 18, 21 or 24 words.
        #[arg(long, alias = "n_words", default_value_t = 12, value_parser = parse_n_words)]
        n_words: usize,
        /// Replace an existing hotkey.
        #[arg(long)]
        overwrite: bool,
    },
    /// Rebuild the coldkey from its mnemonic (or its 0x seed).
    RegenColdkey {
        /// The mnemonic words, quoted or not.
        #[arg(long, num_args = 1.., required_unless_present = "seed", conflicts_with = "seed")]
        mnemonic: Vec<String>,
        /// The 0x-hex mini secret (`secretSeed`) instead of a mnemonic.
        #[arg(long)]
        seed: Option<String>,
        /// Store the coldkey unencrypted.
        #[arg(long, alias = "no_password")]
        no_password: bool,
        /// Replace an existing coldkey.
        #[arg(long)]
        overwrite: bool,
    },
    /// Rebuild the hotkey from its mnemonic (or its 0x seed).
    RegenHotkey {
        /// The mnemonic words, quoted or not.
        #[arg(long, num_args = 1.., required_unless_present = "seed", conflicts_with = "seed")]
        mnemonic: Vec<String>,
        /// The 0x-hex mini secret (`secretSeed`) instead of a mnemonic.
        #[arg(long)]
        seed: Option<String>,
        /// Replace an existing hotkey.
        #[arg(long)]
        overwrite: bool,
    },
    /// List the wallets under --wallet.path with their hotkeys.
    List {
        /// Print JSON: [{"name", "path", "coldkeypub", "hotkeys": [{"name", "ss58"}]}].
        #[arg(long)]
        json: bool,
    },
    /// Show the wallet selected by --wallet.name: its coldkey and hotkey addresses.
    Show {
        /// Print JSON: {"name", "path", "coldkeypub", "hotkeys": [{"name", "ss58"}]}.
        #[arg(long)]
        json: bool,
    },
}

fn parse_n_words(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if MNEMONIC_WORD_COUNTS.contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} words: use 12, 15, 18, 21 or 24"))
    }
}

/// Runs a wallet command for the configured wallet (`path` may still contain `~`).
pub fn run(cmd: WalletCmd, wallet: &WalletConfig) -> Result<()> {
    let prompt = |p: &str| rpassword::prompt_password(p).map(Zeroizing::new);
    run_with(cmd, wallet, &prompt, &mut io::stdout().lock())
}

/// Asks for a password, hiding input; injectable for tests.
type Prompt<'a> = &'a dyn Fn(&str) -> io::Result<Zeroizing<String>>;

fn run_with(cmd: WalletCmd, cfg: &WalletConfig, prompt: Prompt, out: &mut dyn Write) -> Result<()> {
    let wallet = Wallet::new(
        expand_tilde(&cfg.path),
        cfg.name.clone(),
        cfg.hotkey.clone(),
    );
    match cmd {
        WalletCmd::NewColdkey {
            n_words,
            no_password,
            overwrite,
        } => {
            let password = new_password(&wallet, no_password, prompt)?;
            let kp = wallet
                .create_coldkey(n_words, password.as_deref().map(String::as_str), overwrite)
                .context("cannot create the coldkey")?;
            report_new(out, &wallet, "coldkey", &kp, password.is_some())
        }
        WalletCmd::NewHotkey { n_words, overwrite } => {
            let kp = wallet
                .create_hotkey(n_words, overwrite)
                .context("cannot create the hotkey")?;
            report_new(out, &wallet, "hotkey", &kp, false)
        }
        WalletCmd::RegenColdkey {
            mnemonic,
            seed,
            no_password,
            overwrite,
        } => {
            // Build the key first: a typo in the mnemonic should fail before any password prompt.
            let kp = key_from(&mnemonic, seed.as_deref())?;
            let password = new_password(&wallet, no_password, prompt)?;
            wallet
                .set_coldkey(&kp, password.as_deref().map(String::as_str), overwrite)
                .context("cannot write the coldkey")?;
            report_regen(out, &wallet, "coldkey", &kp, password.is_some())
        }
        WalletCmd::RegenHotkey {
            mnemonic,
            seed,
            overwrite,
        } => {
            let kp = key_from(&mnemonic, seed.as_deref())?;
            wallet
                .set_hotkey(&kp, overwrite)
                .context("cannot write the hotkey")?;
            report_regen(out, &wallet, "hotkey", &kp, false)
        }
        WalletCmd::List { json } => {
            let root = wallet.path();
            let wallets = list_wallets(root)
                .with_context(|| format!("cannot list wallets in {}", root.display()))?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &wallets)?;
                writeln!(out)?;
            } else if wallets.is_empty() {
                writeln!(out, "no wallets in {}", root.display())?;
            } else {
                for info in &wallets {
                    print_info(out, info, None)?;
                }
            }
            Ok(())
        }
        WalletCmd::Show { json } => {
            let info = wallet.info()?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &info)?;
                writeln!(out)?;
            } else {
                print_info(out, &info, Some(wallet.hotkey_name()))?;
            }
            Ok(())
        }
    }
}

fn key_from(mnemonic: &[String], seed: Option<&str>) -> Result<Keypair> {
    match seed {
        Some(seed) => Keypair::from_seed_hex(seed).context("invalid --seed"),
        None => Keypair::from_mnemonic(&mnemonic.join(" ")).context("invalid --mnemonic"),
    }
}

/// The password to encrypt a new coldkey with: none with --no-password, else the environment,
/// else asked twice.
fn new_password(
    wallet: &Wallet,
    no_password: bool,
    prompt: Prompt,
) -> Result<Option<Zeroizing<String>>> {
    if no_password {
        return Ok(None);
    }
    if let Some(pw) = password_from_env(wallet.name()) {
        return Ok(Some(pw));
    }
    let hint = || {
        format!(
            "cannot read a password; set {} or pass --no-password",
            password_env_var(wallet.name())
        )
    };
    let first = prompt(&format!(
        "Password to encrypt the coldkey of wallet {:?}: ",
        wallet.name()
    ))
    .with_context(hint)?;
    if first.is_empty() {
        bail!("empty password refused; pass --no-password for an unencrypted coldkey");
    }
    let second = prompt("Repeat the password: ").with_context(hint)?;
    if *first != *second {
        bail!("the passwords differ; nothing was written");
    }
    Ok(Some(first))
}

fn report_new(
    out: &mut dyn Write,
    wallet: &Wallet,
    what: &str,
    kp: &Keypair,
    encrypted: bool,
) -> Result<()> {
    report_regen(out, wallet, what, kp, encrypted)?;
    let Some(phrase) = kp.mnemonic() else {
        return Ok(());
    };
    writeln!(
        out,
        "\nIMPORTANT: write this mnemonic down and keep it secret. It is shown only this once and\n\
         is the only way to recover the {what} (mrctl wallet regen-{what} --mnemonic \"...\"):\n\n  {phrase}\n"
    )?;
    Ok(())
}

fn report_regen(
    out: &mut dyn Write,
    wallet: &Wallet,
    what: &str,
    kp: &Keypair,
    encrypted: bool,
) -> Result<()> {
    let file = if what == "coldkey" {
        wallet.coldkey_file()
    } else {
        wallet.hotkey_file()
    };
    let how = if encrypted {
        "encrypted"
    } else {
        "unencrypted"
    };
    writeln!(out, "wrote {what} {} ({how})", file.path().display())?;
    writeln!(out, "  ss58 address: {}", kp.ss58_address())?;
    Ok(())
}

fn print_info(out: &mut dyn Write, info: &WalletInfo, selected: Option<&str>) -> Result<()> {
    let unknown = "(unreadable)";
    writeln!(
        out,
        "{}  {}  coldkey {}",
        info.name,
        info.path.display(),
        info.coldkeypub.as_deref().unwrap_or(unknown)
    )?;
    if info.hotkeys.is_empty() {
        writeln!(out, "  (no hotkeys)")?;
    }
    for h in &info.hotkeys {
        let mark = if selected == Some(h.name.as_str()) {
            "*"
        } else {
            " "
        };
        writeln!(
            out,
            "  {mark} {:<16} {}",
            h.name,
            h.ss58.as_deref().unwrap_or(unknown)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::{Path, PathBuf};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: WalletCmd,
    }

    fn parse(args: &[&str]) -> Result<WalletCmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("wallet").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn cfg(path: &Path, name: &str, hotkey: &str) -> WalletConfig {
        WalletConfig {
            name: name.into(),
            hotkey: hotkey.into(),
            path: path.to_path_buf(),
        }
    }

    fn no_prompt(_: &str) -> io::Result<Zeroizing<String>> {
        Err(io::Error::other("no terminal"))
    }

    fn exec(args: &[&str], cfg: &WalletConfig, prompt: Prompt) -> Result<String> {
        let mut out = Vec::new();
        run_with(parse(args)?, cfg, prompt, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/wallet/wallets")
    }

    const HOTKEY_PHRASE: &str =
        "burger village spare shield tattoo waste breeze beyond decrease ugly steak rescue";
    const HOTKEY_SS58: &str = "5EZpCAj2ByEiTUCwacXcwh4eC5MfBA9iZQkEWXm2NKGzirgb";

    #[test]
    fn parses_flags() {
        assert!(matches!(
            parse(&["new-coldkey"]).expect("parse"),
            WalletCmd::NewColdkey {
                n_words: 12,
                no_password: false,
                overwrite: false
            }
        ));
        assert!(matches!(
            parse(&["new-hotkey", "--n-words", "24", "--overwrite"]).expect("parse"),
            WalletCmd::NewHotkey {
                n_words: 24,
                overwrite: true
            }
        ));
        assert!(parse(&["new-hotkey", "--n-words", "13"]).is_err());
        assert!(parse(&["regen-hotkey"]).is_err());
        let WalletCmd::RegenColdkey { mnemonic, .. } =
            parse(&["regen-coldkey", "--mnemonic", "a", "b", "--no-password"]).expect("parse")
        else {
            panic!("wrong command");
        };
        assert_eq!(mnemonic, ["a", "b"]);
        assert!(parse(&["regen-hotkey", "--mnemonic", "a", "--seed", "0x00"]).is_err());
    }

    #[test]
    fn show_fixture_wallet_json() {
        let out = exec(
            &["show", "--json"],
            &cfg(&fixtures(), "alice", "default"),
            &no_prompt,
        )
        .expect("show");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["name"], "alice");
        assert_eq!(
            v["coldkeypub"],
            "5DDFLijdzh8Jt7kHyd9zgE8fMDgxpyabGfD7x2NuEC5aQFKg"
        );
        assert_eq!(v["hotkeys"][0]["name"], "default");
        assert_eq!(v["hotkeys"][0]["ss58"], HOTKEY_SS58);
        assert_eq!(v["hotkeys"][1]["name"], "miner1");
        let text = exec(&["show"], &cfg(&fixtures(), "alice", "miner1"), &no_prompt).expect("show");
        assert!(text.contains("* miner1"), "{text}");
        let err = exec(
            &["show"],
            &cfg(&fixtures(), "nobody", "default"),
            &no_prompt,
        )
        .expect_err("missing");
        assert!(err.to_string().contains("nobody"), "{err}");
    }

    #[test]
    fn create_regen_list_without_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path(), "mrctl-test-plain", "h1");
        let out = exec(&["new-coldkey", "--no-password"], &c, &no_prompt).expect("new coldkey");
        assert!(
            out.contains("IMPORTANT") && out.contains("unencrypted"),
            "{out}"
        );
        let out = exec(&["new-hotkey", "--n-words", "15"], &c, &no_prompt).expect("new hotkey");
        let phrase = out.lines().last().map(str::trim).unwrap_or_default();
        let phrase_line = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .expect("phrase");
        assert_eq!(phrase_line.split_whitespace().count(), 15, "{out} {phrase}");
        let err = exec(&["new-hotkey"], &c, &no_prompt).expect_err("exists");
        assert!(format!("{err:#}").contains("already exists"), "{err:#}");

        let mut args = vec!["regen-hotkey", "--overwrite", "--mnemonic"];
        args.extend(HOTKEY_PHRASE.split(' '));
        let out = exec(&args, &c, &no_prompt).expect("regen");
        assert!(out.contains(HOTKEY_SS58), "{out}");
        assert!(!out.contains("IMPORTANT"));

        let c2 = cfg(dir.path(), "mrctl-test-other", "default");
        exec(
            &[
                "regen-coldkey",
                "--no-password",
                "--mnemonic",
                HOTKEY_PHRASE,
            ],
            &c2,
            &no_prompt,
        )
        .expect("regen coldkey");
        let v: serde_json::Value =
            serde_json::from_str(&exec(&["list", "--json"], &c, &no_prompt).expect("list"))
                .expect("json");
        let names: Vec<&str> = v
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|w| w["name"].as_str())
            .collect();
        assert_eq!(names, ["mrctl-test-other", "mrctl-test-plain"]);
        assert_eq!(v[0]["coldkeypub"], HOTKEY_SS58);
        assert_eq!(v[1]["hotkeys"][0]["ss58"], HOTKEY_SS58);
        let text = exec(&["list"], &c, &no_prompt).expect("list");
        assert!(text.contains("mrctl-test-plain"), "{text}");
    }

    #[test]
    fn password_prompts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path(), "mrctl-test-pw", "default");
        // No terminal and no environment variable: a clear error naming the variable.
        let err = exec(&["new-coldkey"], &c, &no_prompt).expect_err("no prompt");
        assert!(
            format!("{err:#}").contains("BT_COLD_PW_MRCTL_TEST_PW"),
            "{err:#}"
        );
        // Mismatched confirmation writes nothing.
        let answers = std::cell::Cell::new(0);
        let differing = |_: &str| {
            answers.set(answers.get() + 1);
            Ok(Zeroizing::new(format!("pw{}", answers.get())))
        };
        let err = exec(&["new-coldkey"], &c, &differing).expect_err("mismatch");
        assert!(err.to_string().contains("differ"), "{err}");
        assert!(!dir.path().join("mrctl-test-pw").exists());
        // Bad mnemonic fails before prompting.
        let err = exec(
            &["regen-coldkey", "--mnemonic", "not", "words"],
            &c,
            &differing,
        )
        .expect_err("bad mnemonic");
        assert!(format!("{err:#}").contains("mnemonic"), "{err:#}");
        // Matching passwords: encrypted (one slow key derivation).
        let same = |_: &str| Ok(Zeroizing::new("hunter2 hunter2".to_string()));
        let out = exec(&["new-coldkey"], &c, &same).expect("encrypted");
        assert!(out.contains("(encrypted)"), "{out}");
        let w = Wallet::new(dir.path(), "mrctl-test-pw", "default");
        assert_eq!(
            w.coldkey_file().encryption().expect("detect"),
            mapreduce::wallet::Encryption::Nacl
        );
    }
}
