//! Every permission name, listed once. Each is a marker type so handlers can
//! require it in their signature: `admin: Require<perm::MemberManage>`.

/// A named permission that roles grant.
pub trait Permission {
    /// The permission's stable name, as stored in `role_permissions`.
    const NAME: &'static str;
}

macro_rules! permissions {
    ($($ty:ident => $name:literal, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub struct $ty;
            impl Permission for $ty {
                const NAME: &'static str = $name;
            }
        )*
        /// Every permission name the code checks.
        pub const ALL: &[&str] = &[$($name,)*];
    };
}

permissions! {
    AdminManage => "admin.manage", "Add, change and remove administrators.";
    MemberRead => "member.read", "List and read member accounts.";
    MemberManage => "member.manage", "Change, freeze and unfreeze member accounts.";
    RoleManage => "role.manage", "Manage roles, their permissions, groups and role grants.";
    MenuManage => "menu.manage", "Manage the admin menu tree.";
    BlacklistManage => "blacklist.manage", "Blacklist IPs and accounts.";
    AuditRead => "audit.read", "Read the audit log of admin actions.";
    SeckillManage => "seckill.manage", "Create, open, close and watch flash-sale events.";
    ShopReview => "shop.review", "Approve, reject, suspend and reinstate shops.";
    ProductReview => "product.review", "Approve or reject products and their revisions.";
    CatalogManage => "catalog.manage", "Manage the category tree.";
    OrderAudit => "order.audit", "Read any order of any shop.";
    OrderIntervene => "order.intervene", "Cancel any order before it ships, with a reason.";
    PaymentRead => "payment.read", "Read any payment with its event log.";
    FinanceManage => "finance.manage", "Approve or reject shop withdrawals and read the platform's books.";
    CaseArbitrate => "case.arbitrate", "Work the queue of escalated complaints and appeals, take part in their threads and decide them.";
}
