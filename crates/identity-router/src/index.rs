//! The rule index: finds the first matching rule without looking at every rule.
//!
//! Rules are grouped by *shape*: the set of exact-valued fields they constrain (`matchUserId`,
//! `matchProvider`, each value of `matchAction`, the literal prefix of a `matchResourceId` glob,
//! ...). Within a shape, a hash table maps the tuple of those values to the rules that carry it,
//! in priority order. A lookup probes each shape once with the context's values, so its cost
//! follows the number of shapes (a handful in real rule sets), not the number of rules; the
//! candidates a probe returns are checked in full, so the index only ever narrows the search.
//! This is the "tuple space search" of packet classifiers.

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use identity_core::{MigrationPhase, RequestContext};

use crate::rules::CompiledRule;

/// One field a shape keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dim {
    UserId,
    ResourceKind,
    Provider,
    Action,
    Phase,
    SpiffeId,
    ResourceId,
    /// The first `n` bytes of `resourceId`, for globs.
    ResourceIdPrefix(usize),
    Model,
    /// The first `n` bytes of `model`, for globs.
    ModelPrefix(usize),
}

impl Dim {
    /// The context's value for this field, or `None` when the context cannot match the shape.
    fn value(self, ctx: &RequestContext) -> Option<&str> {
        match self {
            Self::UserId => Some(&ctx.user_id),
            Self::ResourceKind => Some(ctx.resource_kind.as_str()),
            Self::Provider => Some(&ctx.provider),
            Self::Action => Some(&ctx.action),
            Self::Phase => ctx.phase.map(MigrationPhase::as_str),
            Self::SpiffeId => ctx.spiffe_id.as_deref(),
            Self::ResourceId => Some(&ctx.resource_id),
            Self::ResourceIdPrefix(n) => ctx.resource_id.get(..n),
            Self::Model => Some(&ctx.model),
            Self::ModelPrefix(n) => ctx.model.get(..n),
        }
    }
}

/// The most fields a shape can have: one per variant family of [`Dim`].
const MAX_DIMS: usize = 8;

#[derive(Debug)]
struct Bucket {
    hash: u64,
    key: Box<[Box<str>]>,
    /// Positions (in priority order) of the rules with this key, ascending.
    positions: Vec<u32>,
}

#[derive(Debug)]
struct Shape {
    dims: Box<[Dim]>,
    table: HashTable<Bucket>,
    /// The lowest position of any rule of this shape: a shape cannot beat a better match found
    /// already when its best rule comes later.
    first_position: u32,
}

/// The compiled index over a priority-sorted rule list.
#[derive(Debug)]
pub(crate) struct RuleIndex {
    shapes: Vec<Shape>,
    hasher: foldhash::fast::RandomState,
}

impl RuleIndex {
    pub(crate) fn new(rules: &[CompiledRule]) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        let mut shapes: Vec<Shape> = Vec::new();
        for (position, rule) in rules.iter().enumerate() {
            // Positions fit in u32: a router refuses more than u32::MAX rules long before.
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            let fields = key_fields(rule);
            let dims: Box<[Dim]> = fields.iter().map(|(dim, _)| *dim).collect();
            let shape = match shapes.iter_mut().position(|s| s.dims == dims) {
                Some(i) => &mut shapes[i],
                None => {
                    shapes.push(Shape {
                        dims,
                        table: HashTable::new(),
                        first_position: position,
                    });
                    let last = shapes.len() - 1;
                    &mut shapes[last]
                }
            };
            for key in combinations(&fields) {
                let hash = hash_key(&hasher, key.iter().map(|k| &**k));
                let mut bucket = shape
                    .table
                    .entry(hash, |b| b.key == key, |b| b.hash)
                    .or_insert_with(|| Bucket {
                        hash,
                        key,
                        positions: Vec::new(),
                    });
                bucket.get_mut().positions.push(position);
            }
        }
        shapes.sort_by_key(|s| s.first_position);
        Self { shapes, hasher }
    }

    /// The position of the first rule after `after` (all rules when `None`) that matches `ctx`.
    pub(crate) fn first_match(
        &self,
        rules: &[CompiledRule],
        ctx: &RequestContext,
        after: Option<usize>,
    ) -> Option<usize> {
        let start = after.map_or(0, |a| a + 1);
        let mut best = usize::MAX;
        'shapes: for shape in &self.shapes {
            if shape.first_position as usize >= best {
                // Shapes are sorted by first position: no later shape can do better either.
                break;
            }
            let mut values = [""; MAX_DIMS];
            for (slot, dim) in values.iter_mut().zip(&*shape.dims) {
                match dim.value(ctx) {
                    Some(value) => *slot = value,
                    None => continue 'shapes,
                }
            }
            let values = &values[..shape.dims.len()];
            let hash = hash_key(&self.hasher, values.iter().copied());
            let Some(bucket) = shape
                .table
                .find(hash, |b| b.key.iter().zip(values).all(|(k, v)| **k == **v))
            else {
                continue;
            };
            let from = bucket.positions.partition_point(|&p| (p as usize) < start);
            for &position in &bucket.positions[from..] {
                let position = position as usize;
                if position >= best {
                    break;
                }
                if rules[position].matches(ctx) {
                    best = position;
                    break;
                }
            }
        }
        (best != usize::MAX).then_some(best)
    }
}

/// The first rule after `after` that matches, by looking at every rule in order: the
/// reference's algorithm, which the index must agree with.
pub(crate) fn scan_first_match(
    rules: &[CompiledRule],
    ctx: &RequestContext,
    after: Option<usize>,
) -> Option<usize> {
    let start = after.map_or(0, |a| a + 1);
    rules
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, rule)| rule.matches(ctx))
        .map(|(position, _)| position)
}

/// The fields a rule is keyed on, each with its admissible values (several for a list).
fn key_fields(rule: &CompiledRule) -> Vec<(Dim, Vec<Box<str>>)> {
    let mut fields: Vec<(Dim, Vec<Box<str>>)> = Vec::with_capacity(MAX_DIMS);
    if let Some(user) = &rule.user_id {
        fields.push((Dim::UserId, vec![user.clone()]));
    }
    if let Some(kind) = rule.resource_kind {
        fields.push((Dim::ResourceKind, vec![kind.as_str().into()]));
    }
    if let Some(provider) = &rule.provider {
        fields.push((Dim::Provider, vec![provider.clone()]));
    }
    if let Some(actions) = &rule.actions {
        fields.push((Dim::Action, actions.to_vec()));
    }
    if let Some(phases) = &rule.phases {
        fields.push((
            Dim::Phase,
            phases.iter().map(|p| p.as_str().into()).collect(),
        ));
    }
    if let Some(spiffe) = &rule.spiffe_id {
        fields.push((Dim::SpiffeId, vec![spiffe.clone()]));
    }
    for (glob, exact, prefix) in [
        (
            &rule.resource_id,
            Dim::ResourceId,
            Dim::ResourceIdPrefix as fn(usize) -> Dim,
        ),
        (&rule.model, Dim::Model, Dim::ModelPrefix),
    ] {
        let Some(glob) = glob else { continue };
        let literal = glob.literal_prefix();
        if glob.is_exact() {
            fields.push((exact, vec![literal.into()]));
        } else if !literal.is_empty() {
            fields.push((prefix(literal.len()), vec![literal.into()]));
        }
    }
    fields
}

/// Every key a rule is reachable by: the cartesian product of its fields' values.
fn combinations(fields: &[(Dim, Vec<Box<str>>)]) -> Vec<Box<[Box<str>]>> {
    let mut keys: Vec<Vec<Box<str>>> = vec![Vec::with_capacity(fields.len())];
    for (_, values) in fields {
        keys = keys
            .into_iter()
            .flat_map(|key| {
                values.iter().map(move |value| {
                    let mut key = key.clone();
                    key.push(value.clone());
                    key
                })
            })
            .collect();
    }
    keys.into_iter().map(Vec::into_boxed_slice).collect()
}

fn hash_key<'a>(hasher: &impl BuildHasher, parts: impl Iterator<Item = &'a str>) -> u64 {
    let mut state = hasher.build_hasher();
    for part in parts {
        state.write(part.as_bytes());
        // A separator byte that UTF-8 never contains keeps ("ab","c") apart from ("a","bc").
        state.write_u8(0xff);
    }
    state.finish()
}
