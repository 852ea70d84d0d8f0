//! Where coldkey passwords come from without a prompt: `BT_COLD_PW_<NAME>`.
//!
//! Headless daemons and scripts cannot answer a prompt; the console prompts when the variable is
//! unset. The name is the wallet name upper-cased, with every non-alphanumeric character as `_`.

use zeroize::Zeroizing;

/// The environment variable holding the coldkey password of wallet `wallet_name`.
pub fn password_env_var(wallet_name: &str) -> String {
    let suffix: String = wallet_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("BT_COLD_PW_{suffix}")
}

/// The password from `BT_COLD_PW_<NAME>`, if set (an empty value counts as unset).
pub fn password_from_env(wallet_name: &str) -> Option<Zeroizing<String>> {
    std::env::var(password_env_var(wallet_name))
        .ok()
        .filter(|s| !s.is_empty())
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        assert_eq!(password_env_var("alice"), "BT_COLD_PW_ALICE");
        assert_eq!(password_env_var("my-wallet.2"), "BT_COLD_PW_MY_WALLET_2");
        assert_eq!(password_env_var("é"), "BT_COLD_PW__");
    }
}
