-- aitrader schema for a Supabase project (STORAGE_BACKEND=supabase).
-- Paste into the project's SQL editor, or: aitrader db supabase-sql | psql "$DATABASE_URL".
-- Running it twice changes nothing. Row-level security lets a signed-in user read and write
-- only rows whose user_id is their own auth.uid(); the service-role key bypasses RLS (the
-- engine on Fly uses it, with USER_ID set to the owner's Supabase user id).

create table if not exists public.traders (
    id varchar(32) primary key,
    user_id varchar(64) not null,
    name varchar(100) not null,
    description varchar(2000) not null default '',
    symbols jsonb not null,
    timeframes jsonb not null,
    check_interval integer not null default 60,
    signal_code text not null,
    reanalysis_interval integer,
    status varchar(24) not null default 'active',
    auto_trade boolean not null default false,
    stop_loss_pct numeric(38, 18),
    take_profit_pct numeric(38, 18),
    trailing_stop_pct numeric(38, 18),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint uq_traders_user_name unique (user_id, name)
);

create table if not exists public.signals (
    id varchar(32) primary key,
    trader_id varchar(32) not null references public.traders (id) on delete cascade,
    user_id varchar(64) not null,
    symbol varchar(20) not null,
    timeframe varchar(4) not null,
    candle_time bigint not null,
    signal_type varchar(24) not null default 'entry',
    status varchar(24) not null default 'pending',
    trigger_price numeric(38, 18),
    target_price numeric(38, 18),
    stop_loss numeric(38, 18),
    confidence double precision,
    reasoning text,
    metadata jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint uq_signals_candle unique (trader_id, symbol, timeframe, candle_time)
);

create table if not exists public.positions (
    id varchar(32) primary key,
    user_id varchar(64) not null,
    trader_id varchar(32) references public.traders (id) on delete set null,
    signal_id varchar(32) references public.signals (id) on delete set null,
    symbol varchar(20) not null,
    side varchar(24) not null,
    mode varchar(24) not null default 'paper',
    entry_price numeric(38, 18) not null,
    current_price numeric(38, 18),
    size numeric(38, 18) not null,
    stop_loss numeric(38, 18),
    take_profit numeric(38, 18),
    trailing_stop_pct numeric(38, 18),
    best_price numeric(38, 18),
    pnl numeric(38, 18) not null default 0,
    pnl_pct numeric(38, 18) not null default 0,
    fees numeric(38, 18) not null default 0,
    status varchar(24) not null default 'open',
    exit_price numeric(38, 18),
    close_reason varchar(64),
    entry_order_id varchar(32),
    exit_order_id varchar(32),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    closed_at timestamptz
);

create table if not exists public.orders (
    id varchar(32) primary key,
    user_id varchar(64) not null,
    client_order_id varchar(36) not null unique,
    exchange_order_id varchar(32),
    symbol varchar(20) not null,
    side varchar(24) not null,
    type varchar(24) not null,
    mode varchar(24) not null default 'paper',
    quantity numeric(38, 18),
    quote_quantity numeric(38, 18),
    price numeric(38, 18),
    status varchar(24) not null default 'PENDING_SUBMIT',
    executed_qty numeric(38, 18) not null default 0,
    cumulative_quote_qty numeric(38, 18) not null default 0,
    fills jsonb not null default '[]',
    position_id varchar(32),
    signal_id varchar(32),
    purpose varchar(16) not null default 'manual',
    error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table if not exists public.balances (
    user_id varchar(64) not null,
    asset varchar(16) not null,
    free numeric(38, 18) not null default 0,
    locked numeric(38, 18) not null default 0,
    updated_at timestamptz not null default now(),
    primary key (user_id, asset)
);

create table if not exists public.heartbeats (
    component varchar(64) primary key,
    user_id varchar(64) not null default '',
    at timestamptz not null default now(),
    info jsonb not null default '{}'
);

create index if not exists ix_traders_user_id on public.traders (user_id);
create index if not exists ix_traders_status on public.traders (status);
create index if not exists ix_signals_user_id on public.signals (user_id);
create index if not exists ix_signals_symbol on public.signals (symbol);
create index if not exists ix_signals_status on public.signals (status);
create index if not exists ix_signals_trader_created on public.signals (trader_id, created_at);
create index if not exists ix_positions_user_status on public.positions (user_id, status);
create index if not exists ix_positions_symbol on public.positions (symbol);
create index if not exists ix_orders_user_created on public.orders (user_id, created_at);
create index if not exists ix_orders_status on public.orders (status);
create index if not exists ix_orders_position_id on public.orders (position_id);

-- Row-level security: every table, every command, own rows only.
do $$
declare
    t text;
begin
    foreach t in array array['traders', 'signals', 'positions', 'orders', 'balances', 'heartbeats'] loop
        execute format('alter table public.%I enable row level security', t);
        execute format('drop policy if exists %I on public.%I', t || '_own_rows', t);
        execute format(
            'create policy %I on public.%I for all to authenticated '
            'using (user_id = (select auth.uid())::text) '
            'with check (user_id = (select auth.uid())::text)',
            t || '_own_rows', t
        );
        execute format('grant select, insert, update, delete on public.%I to authenticated', t);
        execute format('revoke all on public.%I from anon', t);
    end loop;
end
$$;

-- Replace a user's balances in one transaction (PostgREST: POST /rest/v1/rpc/set_balances).
-- security invoker: the caller's RLS applies, so a user can only replace their own balances.
create or replace function public.set_balances(p_user_id text, p_balances jsonb)
returns void
language plpgsql
security invoker
set search_path = public
as $$
begin
    delete from public.balances where user_id = p_user_id;
    insert into public.balances (user_id, asset, free, locked, updated_at)
    select p_user_id, b.asset, b.free, b.locked, coalesce(b.updated_at, now())
    from jsonb_to_recordset(p_balances) as b(asset text, free numeric, locked numeric, updated_at timestamptz);
end
$$;

grant execute on function public.set_balances(text, jsonb) to authenticated;
