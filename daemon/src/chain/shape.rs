//! Call and storage shapes taken from the connected chain's metadata.
//!
//! Extrinsics are built with subxt's dynamic API as named fields, checked against the call's
//! fields in the metadata and test-encoded before anything is signed. A runtime whose call has
//! other arguments (this dev runtime and mainnet differ on `register_network`, stake currency
//! types, ...) gives [`ChainError::Incompatible`] naming the call, the runtime version, the
//! runtime's signature and what differs: never a panic, never a silently wrong extrinsic.

use scale_encode::EncodeAsType;
use scale_info::{TypeDef, TypeDefPrimitive, form::PortableForm};
use subxt::Metadata;
use subxt::dynamic::Value;
use subxt::ext::{scale_encode, scale_value::Composite};
use subxt::tx::DynamicPayload;

use super::error::ChainError;
use super::types::RuntimeVersion;

/// The pallet holding the Bittensor logic.
pub const SUBTENSOR: &str = "SubtensorModule";
/// Subnet hyperparameters settable by sudo (and subnet owners).
pub const ADMIN_UTILS: &str = "AdminUtils";

/// A dynamically built extrinsic payload.
pub type Call = DynamicPayload<Composite<()>>;

/// One argument of a call: its name and value.
pub type Arg = (&'static str, Value);

/// Builds `pallet.call` from named arguments, following the metadata's field list.
///
/// `args` must all exist in the runtime's call; `defaults` fill fields that only some runtimes
/// have (e.g. `mechid` of `register_network` on the dev runtime) and are dropped when absent.
pub fn build_call(
    meta: &Metadata,
    runtime: &RuntimeVersion,
    pallet: &str,
    call: &str,
    args: Vec<Arg>,
    defaults: Vec<Arg>,
) -> Result<Call, ChainError> {
    let fields = ordered_fields(meta, runtime, pallet, call, args, defaults)?;
    Ok(subxt::dynamic::tx(pallet, call, Composite::named(fields)))
}

/// The call as a `RuntimeCall` value (for wrapping in `Sudo.sudo`).
pub fn runtime_call_value(
    meta: &Metadata,
    runtime: &RuntimeVersion,
    pallet: &str,
    call: &str,
    args: Vec<Arg>,
    defaults: Vec<Arg>,
) -> Result<Value, ChainError> {
    let fields = ordered_fields(meta, runtime, pallet, call, args, defaults)?;
    Ok(Value::unnamed_variant(
        pallet,
        [Value::named_variant(call, fields)],
    ))
}

fn ordered_fields(
    meta: &Metadata,
    runtime: &RuntimeVersion,
    pallet: &str,
    call: &str,
    mut args: Vec<Arg>,
    mut defaults: Vec<Arg>,
) -> Result<Vec<(String, Value)>, ChainError> {
    let item = format!("{pallet}.{call}");
    let incompatible = |reason: String| ChainError::Incompatible {
        item: item.clone(),
        runtime: runtime.to_string(),
        reason,
    };
    let p = meta
        .pallet_by_name(pallet)
        .ok_or_else(|| incompatible(format!("the runtime has no pallet {pallet}")))?;
    let variant = p
        .call_variant_by_name(call)
        .ok_or_else(|| incompatible(format!("pallet {pallet} has no call {call}")))?;
    let signature = render_signature(meta, call, &variant.fields);

    let mut out = Vec::with_capacity(variant.fields.len());
    for field in &variant.fields {
        let Some(name) = field.name.as_deref() else {
            return Err(incompatible(format!(
                "the runtime's {signature} has unnamed arguments"
            )));
        };
        let value = if let Some(i) = args.iter().position(|(n, _)| *n == name) {
            args.swap_remove(i).1
        } else if let Some(i) = defaults.iter().position(|(n, _)| *n == name) {
            defaults.swap_remove(i).1
        } else {
            return Err(incompatible(format!(
                "the runtime expects {signature}; this client does not know argument `{name}`"
            )));
        };
        let mut bytes = Vec::new();
        value
            .encode_as_type_to(field.ty.id, meta.types(), &mut bytes)
            .map_err(|e| {
                incompatible(format!(
                    "the runtime expects {signature}; argument `{name}` does not fit: {e}"
                ))
            })?;
        out.push((name.to_string(), value));
    }
    if let Some((name, _)) = args.first() {
        return Err(incompatible(format!(
            "the runtime's {signature} has no argument `{name}`"
        )));
    }
    Ok(out)
}

/// `call(name: Type, ...)` as the metadata describes it.
pub fn render_signature(
    meta: &Metadata,
    call: &str,
    fields: &[scale_info::Field<PortableForm>],
) -> String {
    let args = fields
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f.name.as_deref().unwrap_or("_"),
                render_type(meta, f.ty.id, 0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{call}({args})")
}

/// A short Rust-like name for a metadata type.
pub fn render_type(meta: &Metadata, id: u32, depth: usize) -> String {
    let Some(ty) = meta.types().resolve(id) else {
        return format!("#{id}");
    };
    if depth > 4 {
        return "..".into();
    }
    let named = |ty: &scale_info::Type<PortableForm>| -> Option<String> {
        let last = ty.path.segments.last()?;
        if ty.type_params.is_empty() {
            return Some(last.clone());
        }
        let params = ty
            .type_params
            .iter()
            .filter_map(|p| p.ty.map(|t| render_type(meta, t.id, depth + 1)))
            .collect::<Vec<_>>();
        if params.is_empty() {
            Some(last.clone())
        } else {
            Some(format!("{last}<{}>", params.join(", ")))
        }
    };
    match &ty.type_def {
        TypeDef::Primitive(p) => match p {
            TypeDefPrimitive::Bool => "bool",
            TypeDefPrimitive::Char => "char",
            TypeDefPrimitive::Str => "String",
            TypeDefPrimitive::U8 => "u8",
            TypeDefPrimitive::U16 => "u16",
            TypeDefPrimitive::U32 => "u32",
            TypeDefPrimitive::U64 => "u64",
            TypeDefPrimitive::U128 => "u128",
            TypeDefPrimitive::U256 => "u256",
            TypeDefPrimitive::I8 => "i8",
            TypeDefPrimitive::I16 => "i16",
            TypeDefPrimitive::I32 => "i32",
            TypeDefPrimitive::I64 => "i64",
            TypeDefPrimitive::I128 => "i128",
            TypeDefPrimitive::I256 => "i256",
        }
        .to_string(),
        TypeDef::Compact(c) => {
            format!("Compact<{}>", render_type(meta, c.type_param.id, depth + 1))
        }
        TypeDef::Sequence(s) => format!("Vec<{}>", render_type(meta, s.type_param.id, depth + 1)),
        TypeDef::Array(a) => format!(
            "[{}; {}]",
            render_type(meta, a.type_param.id, depth + 1),
            a.len
        ),
        TypeDef::Tuple(t) => format!(
            "({})",
            t.fields
                .iter()
                .map(|f| render_type(meta, f.id, depth + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeDef::BitSequence(_) => "BitVec".into(),
        TypeDef::Composite(_) | TypeDef::Variant(_) => {
            named(ty).unwrap_or_else(|| format!("#{id}"))
        }
    }
}

/// Fails with [`ChainError::Incompatible`] unless `pallet.entry` is a storage entry with `keys` keys.
pub fn check_storage(
    meta: &Metadata,
    runtime: &RuntimeVersion,
    pallet: &str,
    entry: &str,
    keys: usize,
) -> Result<(), ChainError> {
    let item = format!("storage {pallet}.{entry}");
    let incompatible = |reason: String| ChainError::Incompatible {
        item: item.clone(),
        runtime: runtime.to_string(),
        reason,
    };
    let p = meta
        .pallet_by_name(pallet)
        .ok_or_else(|| incompatible(format!("the runtime has no pallet {pallet}")))?;
    let e = p
        .storage()
        .and_then(|s| s.entry_by_name(entry))
        .ok_or_else(|| incompatible(format!("pallet {pallet} has no storage {entry}")))?;
    let n = e.keys().len();
    if n != keys {
        return Err(incompatible(format!(
            "it has {n} keys, this client expects {keys}"
        )));
    }
    Ok(())
}

/// A 32-byte account id as a dynamic value.
pub fn account(public_key: [u8; 32]) -> Value {
    Value::from_bytes(public_key)
}

pub fn u(v: impl Into<u128>) -> Value {
    Value::u128(v.into())
}

pub fn u16_vec(v: &[u16]) -> Value {
    Value::unnamed_composite(v.iter().map(|x| Value::u128(u128::from(*x))))
}

/// The storage entries the client reads: (pallet, entry, number of keys).
pub const STORAGE_USED: &[(&str, &str, usize)] = &[
    ("System", "Account", 1),
    (SUBTENSOR, "NetworksAdded", 1),
    (SUBTENSOR, "SubnetworkN", 1),
    (SUBTENSOR, "Uids", 2),
    (SUBTENSOR, "Keys", 2),
    (SUBTENSOR, "Owner", 1),
    (SUBTENSOR, "Axons", 2),
    (SUBTENSOR, "TotalHotkeyAlpha", 2),
    (SUBTENSOR, "Active", 1),
    (SUBTENSOR, "LastUpdate", 1),
    (SUBTENSOR, "Incentive", 1),
    (SUBTENSOR, "Emission", 1),
    (SUBTENSOR, "Dividends", 1),
    (SUBTENSOR, "ValidatorPermit", 1),
    (SUBTENSOR, "BlockAtRegistration", 2),
    (SUBTENSOR, "Tempo", 1),
    (SUBTENSOR, "WeightsSetRateLimit", 1),
    (SUBTENSOR, "CommitRevealWeightsEnabled", 1),
    (SUBTENSOR, "RevealPeriodEpochs", 1),
    (SUBTENSOR, "MinAllowedWeights", 1),
    (SUBTENSOR, "MaxWeightsLimit", 1),
    (SUBTENSOR, "ImmunityPeriod", 1),
    (SUBTENSOR, "WeightsVersionKey", 1),
    (SUBTENSOR, "Burn", 1),
    (SUBTENSOR, "MaxAllowedUids", 1),
    (SUBTENSOR, "Weights", 2),
    (SUBTENSOR, "WeightCommits", 2),
];

/// Checks every storage entry the client reads against `meta`; returns the problems.
pub fn storage_problems(meta: &Metadata, runtime: &RuntimeVersion) -> Vec<ChainError> {
    STORAGE_USED
        .iter()
        .filter_map(|(p, e, k)| check_storage(meta, runtime, p, e, *k).err())
        .collect()
}
