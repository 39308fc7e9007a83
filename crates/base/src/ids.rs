//! Identities of the objects that own a part of the key space.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: an isolated keyspace with its own catalog.
    TenantId
);
id_type!(
    /// A table (or another catalog object that owns rows) within a tenant.
    TableId
);
id_type!(
    /// An index of a table; the primary index holds the rows.
    IndexId
);

impl TenantId {
    /// The system tenant, which owns the cluster's own catalog.
    pub const SYSTEM: TenantId = TenantId(1);
}
