//! The host functions (`env.proxy_*`) and the VM: one wasmtime instance with its own store,
//! as one Envoy worker holds one VM of the plugin.
//!
//! Every value the module hands over (pointers, sizes, enum numbers, serialised maps) is
//! checked: a bad one gets a status back, as Envoy answers, never a panic in the host. An
//! import the harness does not implement answers `UNIMPLEMENTED` and is listed in
//! [`VmState::unsupported`], which tests assert empty.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, Instance, Linker, Module, Store, Val, ValType,
    WasmParams, WasmResults,
};

use crate::abi::{self, buffer, map, metric, status, Pairs};

/// A failure of the VM or of the harness, never of the filter's logic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmError {
    /// The module trapped (a Rust panic in the filter is a trap); the VM is dead.
    Trap(String),
    /// A call into a VM that trapped before.
    Dead(String),
    /// The module lacks an export the host needs, or has it with another type.
    Export(String),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false; what the module logged.
    Rejected(&'static str, Vec<String>),
    /// Loading or compiling the module failed.
    Load(String),
}

impl std::fmt::Display for VmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for VmError {}

/// The compiled module and the host functions: built once per process, shared by every
/// [`Proxy`] and VM.
pub struct Runtime {
    engine: Engine,
    module: Module,
    linker: Linker<VmState>,
}

impl Runtime {
    /// Compiles the module (Cranelift, see the crate docs for why not Pulley).
    pub fn load(wasm: &[u8]) -> Result<Runtime, VmError> {
        let mut config = Config::new();
        // A trap message names the failing function: enough to find it, cheap to keep.
        config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20));
        let engine = Engine::new(&config).map_err(|e| VmError::Load(e.to_string()))?;
        let module = Module::new(&engine, wasm).map_err(|e| VmError::Load(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        define_imports(&mut linker, &module).map_err(|e| VmError::Load(e.to_string()))?;
        Ok(Runtime {
            engine,
            module,
            linker,
        })
    }

    /// The module's imports, as `module.name`.
    pub fn imports(&self) -> Vec<String> {
        self.module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect()
    }

    /// A new proxy process: its own shared data and metrics, no VM yet.
    pub fn proxy(&self) -> Proxy<'_> {
        Proxy {
            runtime: self,
            shared: Arc::new(Mutex::new(Shared::default())),
        }
    }
}

/// What every VM of one proxy process shares: shared data (with compare-and-swap) and
/// metrics, as Envoy shares them between the VMs of a plugin.
#[derive(Debug, Default)]
pub struct Shared {
    data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    next_cas: u32,
    /// Metric name → (type, value).
    pub metrics: BTreeMap<String, (i32, i64)>,
    metric_names: Vec<String>,
    /// Shared queues by name (their id: the place here, plus one), as Envoy keeps them for
    /// every VM of the process whatever VM registered them.
    queues: Vec<(Vec<u8>, VecDeque<Vec<u8>>)>,
}

impl Shared {
    /// Shared data's value under `key`, as a VM would read it.
    pub fn data(&self, key: &str) -> Option<Vec<u8>> {
        self.data.get(key.as_bytes()).map(|(v, _)| v.clone())
    }

    /// Sets shared data's `key` as a VM of the process would (a new CAS token).
    pub fn set_data(&mut self, key: &str, value: &[u8]) {
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        let cas = self.next_cas;
        self.data
            .insert(key.as_bytes().to_vec(), (value.to_vec(), cas));
    }

    /// The messages queue `name` holds now (none: no VM registered it).
    pub fn queued(&self, name: &str) -> Vec<Vec<u8>> {
        self.queues
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, q)| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One proxy process: VMs started from it share its [`Shared`] state, so a VM started after
/// another one trapped finds what the first one left (Envoy's `FAIL_RELOAD`).
pub struct Proxy<'r> {
    runtime: &'r Runtime,
    shared: Arc<Mutex<Shared>>,
}

/// How the host behaves where hosts differ, and faults a test asks for.
#[derive(Debug, Clone)]
pub struct Options {
    /// A Pause from a headers callback stops only the headers (Envoy >= 1.35 with
    /// `allow_on_headers_stop_iteration`); off, it stops everything and the body callbacks
    /// never come (older Envoy, other hosts).
    pub headers_stop_iteration: bool,
    /// `proxy_set_buffer_bytes` answers this status instead of changing the body.
    pub refuse_set_buffer: Option<i32>,
    /// Clusters `proxy_http_call` accepts; empty: any.
    pub clusters: Vec<String>,
    /// Wall clock at VM start, in milliseconds since the epoch.
    pub start_ms: u64,
    /// WASI `random_get` answers this errno instead of filling the buffer.
    pub random_errno: Option<i32>,
    /// The VM's own host properties (`plugin_root_id`, `plugin_vm_id`), by path segments
    /// joined by NUL: read where the effective stream has none of that path (the root
    /// context's callbacks).
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
}

impl Options {
    /// With host property `path` (dotted) set to `value`.
    pub fn property(mut self, dotted: &str, value: &[u8]) -> Options {
        self.properties
            .insert(dotted.replace('.', "\0").into_bytes(), value.to_vec());
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            headers_stop_iteration: true,
            refuse_set_buffer: None,
            clusters: Vec::new(),
            // 2026-11-26T18:34:09Z: fixed, so records are reproducible.
            start_ms: 1_795_715_649_000,
            random_errno: None,
            properties: HashMap::new(),
        }
    }
}

/// One line the module logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: i32,
    pub message: String,
}

/// A call the module dispatched with `proxy_http_call`.
#[derive(Debug, Clone)]
pub struct Call {
    pub token: u32,
    pub cluster: String,
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
    pub timeout_ms: u32,
    /// The answer delivered, once it is.
    pub answer: Option<Answer>,
}

/// What the host delivers to `proxy_on_http_call_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Http {
        /// With `:status`.
        headers: Pairs,
        body: Vec<u8>,
        trailers: Pairs,
    },
    /// No answer (timeout, reset): zero headers, as Envoy reports it.
    Failed,
}

impl Answer {
    /// A plain answer with a status and a body.
    pub fn status(code: u16, body: &[u8]) -> Answer {
        Answer::Http {
            headers: abi::pairs(&[(":status", &code.to_string())]),
            body: body.to_vec(),
            trailers: Vec::new(),
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            Answer::Http { headers, .. } => abi::get_str(headers, ":status")?.parse().ok(),
            Answer::Failed => None,
        }
    }
}

/// A local response the module sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub details: Vec<u8>,
    pub body: Vec<u8>,
    pub headers: Pairs,
}

/// The host's view of one HTTP stream (one HTTP context).
#[derive(Debug, Default)]
pub struct Stream {
    pub request_headers: Option<Pairs>,
    pub request_trailers: Option<Pairs>,
    pub response_headers: Option<Pairs>,
    pub response_trailers: Option<Pairs>,
    /// The body the module can read and change: the current chunk, or everything buffered
    /// since it paused. `None` outside the body phase.
    pub request_body: Option<Vec<u8>>,
    pub response_body: Option<Vec<u8>>,
    /// Properties by path (segments joined by NUL, as the ABI sends them).
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub local_reply: Option<LocalReply>,
    /// The module reset the response (`proxy_close_stream`).
    pub reset: bool,
    /// Headers already on the wire: writes to them change nothing any more.
    pub request_headers_sent: bool,
    pub response_headers_sent: bool,
    /// Writes to header maps that had already gone out (they reach nobody).
    pub late_writes: Vec<String>,
}

/// The store's state: what the host functions see.
pub struct VmState {
    shared: Arc<Mutex<Shared>>,
    pub options: Options,
    pub plugin_configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    pub clock_ns: u64,
    pub tick_period_ms: u32,
    pub logs: Vec<LogLine>,
    /// Imports the module called that the harness does not implement.
    pub unsupported: Vec<String>,
    pub calls: Vec<Call>,
    next_token: u32,
    /// The context host calls act on.
    pub effective: u32,
    /// The export being called (buffers and maps are only there in their callbacks).
    pub callback: &'static str,
    pub streams: HashMap<u32, Stream>,
    /// The answer being delivered to `proxy_on_http_call_response`.
    pub answer: Option<Answer>,
    /// How many times the module called `proxy_done` (a root context that answered
    /// `proxy_on_done` false says it is done now).
    pub done_calls: u32,
    /// How many times the module called WASI `random_get`.
    pub random_calls: u32,
    root: u32,
}

impl VmState {
    pub fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stream(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.effective)
    }
}

/// A running VM: the instance, its store, and the root context.
pub struct Vm {
    pub(crate) store: Store<VmState>,
    instance: Instance,
    pub(crate) root: u32,
    next_context: u32,
    trap: Option<String>,
}

impl Proxy<'_> {
    /// Starts a VM with default [`Options`] and configures its root context.
    pub fn vm(&self, plugin_configuration: &[u8]) -> Result<Vm, VmError> {
        self.vm_with(plugin_configuration, Options::default())
    }

    /// Starts a VM as Envoy does: instantiate, `_initialize`, create the root context,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn vm_with(&self, plugin_configuration: &[u8], options: Options) -> Result<Vm, VmError> {
        let rt = self.runtime;
        let state = VmState {
            shared: self.shared.clone(),
            clock_ns: options.start_ms.saturating_mul(1_000_000),
            options,
            plugin_configuration: plugin_configuration.to_vec(),
            vm_configuration: Vec::new(),
            tick_period_ms: 0,
            logs: Vec::new(),
            unsupported: Vec::new(),
            calls: Vec::new(),
            next_token: 1,
            effective: 0,
            callback: "",
            streams: HashMap::new(),
            answer: None,
            done_calls: 0,
            random_calls: 0,
            root: 1,
        };
        let mut store = Store::new(&rt.engine, state);
        let instance = rt
            .linker
            .instantiate(&mut store, &rt.module)
            .map_err(|e| VmError::Load(e.to_string()))?;
        let mut vm = Vm {
            store,
            instance,
            root: 1,
            next_context: 2,
            trap: None,
        };
        if vm.has_export("_initialize") {
            vm.call::<(), ()>("_initialize", ())?;
        } else if vm.has_export("_start") {
            vm.call::<(), ()>("_start", ())?;
        }
        let root = vm.root;
        vm.call::<(i32, i32), ()>("proxy_on_context_create", (root as i32, 0))?;
        let size = len_i32(vm.store.data().vm_configuration.len());
        if vm.call::<(i32, i32), i32>("proxy_on_vm_start", (root as i32, size))? == 0 {
            return Err(vm.rejected("proxy_on_vm_start"));
        }
        let size = len_i32(vm.store.data().plugin_configuration.len());
        if vm.call::<(i32, i32), i32>("proxy_on_configure", (root as i32, size))? == 0 {
            return Err(vm.rejected("proxy_on_configure"));
        }
        Ok(vm)
    }

    pub fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Vm {
    pub fn state(&self) -> &VmState {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut VmState {
        self.store.data_mut()
    }

    fn rejected(&self, at: &'static str) -> VmError {
        let logs = self
            .state()
            .logs
            .iter()
            .map(|l| l.message.clone())
            .collect();
        VmError::Rejected(at, logs)
    }

    /// The size of the module's linear memory.
    pub fn memory_bytes(&mut self) -> usize {
        match self.instance.get_memory(&mut self.store, "memory") {
            Some(m) => m.data_size(&self.store),
            None => 0,
        }
    }

    /// Why the VM died, if it did.
    pub fn trap(&self) -> Option<&str> {
        self.trap.as_deref()
    }

    fn has_export(&mut self, name: &str) -> bool {
        self.instance.get_export(&mut self.store, name).is_some()
    }

    /// Calls an export with the effective context as it stands.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        params: P,
    ) -> Result<R, VmError> {
        if let Some(t) = &self.trap {
            return Err(VmError::Dead(t.clone()));
        }
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(|e| VmError::Export(format!("{name}: {e}")))?;
        let previous = std::mem::replace(&mut self.store.data_mut().callback, name);
        let result = f.call(&mut self.store, params);
        self.store.data_mut().callback = previous;
        result.map_err(|e| {
            let message = format!("{name}: {e:?}");
            self.trap = Some(message.clone());
            VmError::Trap(message)
        })
    }

    /// Calls a callback with `context` as the effective context (tests call any export, for
    /// any context id, through it).
    pub fn call_context<P: WasmParams, R: WasmResults>(
        &mut self,
        context: u32,
        name: &'static str,
        params: P,
    ) -> Result<R, VmError> {
        self.store.data_mut().effective = context;
        self.call(name, params)
    }

    /// A new HTTP context (`proxy_on_context_create` under the root context).
    pub(crate) fn new_context(&mut self) -> Result<u32, VmError> {
        let id = self.next_context;
        self.next_context += 1;
        self.store.data_mut().streams.insert(id, Stream::default());
        let root = self.root;
        self.call_context::<(i32, i32), ()>(
            id,
            "proxy_on_context_create",
            (id as i32, root as i32),
        )?;
        Ok(id)
    }

    /// Moves the clock on.
    pub fn advance_ms(&mut self, ms: u64) {
        let s = self.store.data_mut();
        s.clock_ns = s.clock_ns.saturating_add(ms.saturating_mul(1_000_000));
    }

    /// One timer tick of the root context.
    pub fn tick(&mut self) -> Result<(), VmError> {
        let root = self.root;
        self.call_context::<i32, ()>(root, "proxy_on_tick", root as i32)
    }

    /// Tokens of dispatched calls not answered yet.
    pub fn pending_calls(&self) -> Vec<u32> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.answer.is_none())
            .map(|c| c.token)
            .collect()
    }

    /// Delivers an answer to `proxy_on_http_call_response` under the root context. A token
    /// the VM never got is delivered too: that is how a test poisons the VM.
    pub fn answer(&mut self, token: u32, answer: Answer) -> Result<(), VmError> {
        let (headers, body, trailers) = match &answer {
            Answer::Http {
                headers,
                body,
                trailers,
            } => (headers.len(), body.len(), trailers.len()),
            Answer::Failed => (0, 0, 0),
        };
        if let Some(call) = self
            .store
            .data_mut()
            .calls
            .iter_mut()
            .find(|c| c.token == token)
        {
            call.answer = Some(answer.clone());
        }
        self.store.data_mut().answer = Some(answer);
        let root = self.root;
        let result = self.call_context::<(i32, i32, i32, i32, i32), ()>(
            root,
            "proxy_on_http_call_response",
            (
                root as i32,
                token as i32,
                len_i32(headers),
                len_i32(body),
                len_i32(trailers),
            ),
        );
        self.store.data_mut().answer = None;
        result
    }

    /// Ticks and answers every call with `answer` until the sinks have been quiet for a
    /// minute of the VM's clock (longer than the longest retry backoff): what the sinks get
    /// of everything queued so far. The clock moves `step_ms` per tick.
    pub fn ship(
        &mut self,
        step_ms: u64,
        mut answer: impl FnMut(&Call) -> Answer,
    ) -> Result<(), VmError> {
        const QUIET_MS: u64 = 60_000;
        let mut quiet_ms = 0;
        for _ in 0..10_000 {
            self.advance_ms(step_ms);
            self.tick()?;
            let mut pending = self.pending_calls();
            if pending.is_empty() {
                quiet_ms += step_ms;
                if quiet_ms >= QUIET_MS {
                    return Ok(());
                }
                continue;
            }
            quiet_ms = 0;
            // An answer can make the sink send its next call at once (presign, upload).
            while let Some(token) = pending.pop() {
                let call = self
                    .state()
                    .calls
                    .iter()
                    .find(|c| c.token == token)
                    .cloned();
                if let Some(call) = call {
                    let a = answer(&call);
                    self.answer(token, a)?;
                }
                if pending.is_empty() {
                    pending = self.pending_calls();
                }
            }
        }
        Err(VmError::Export(
            "the module kept sending calls for 10,000 ticks".into(),
        ))
    }

    /// Shuts the VM down as Envoy does at drain: `proxy_on_done` on the root context.
    pub fn done(&mut self) -> Result<bool, VmError> {
        let root = self.root;
        Ok(self.call_context::<i32, i32>(root, "proxy_on_done", root as i32)? != 0)
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// An i32 from the module read as the u32 (pointer, size) it is.
fn u(v: i32) -> usize {
    v as u32 as usize
}

type C<'a> = Caller<'a, VmState>;

fn memory(caller: &mut C<'_>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// Bytes of the module's memory; `None` when out of bounds.
fn read(caller: &mut C<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = memory(caller)?;
    let start = u(ptr);
    mem.data(&caller)
        .get(start..start.checked_add(u(len))?)
        .map(<[u8]>::to_vec)
}

fn write(caller: &mut C<'_>, ptr: i32, bytes: &[u8]) -> bool {
    match memory(caller) {
        Some(mem) => mem.write(caller, u(ptr), bytes).is_ok(),
        None => false,
    }
}

/// Hands bytes to the module as the ABI does: memory from the module's own allocator
/// (`proxy_on_memory_allocate`, or `malloc` in its absence), the pointer and size written
/// where it asked. Empty values are a null pointer and size 0. A trap in the allocator is
/// the module's trap.
fn give(caller: &mut C<'_>, bytes: &[u8], ptr_out: i32, size_out: i32) -> wasmtime::Result<i32> {
    let mut ptr = 0i32;
    if !bytes.is_empty() {
        let alloc = caller
            .get_export("proxy_on_memory_allocate")
            .or_else(|| caller.get_export("malloc"))
            .and_then(Extern::into_func);
        let Some(alloc) = alloc else {
            return Ok(status::INTERNAL_FAILURE);
        };
        let alloc = alloc.typed::<i32, i32>(&caller)?;
        ptr = alloc.call(&mut *caller, len_i32(bytes.len()))?;
        if ptr == 0 || !write(caller, ptr, bytes) {
            return Ok(status::INVALID_MEMORY_ACCESS);
        }
    }
    if !write(caller, ptr_out, &ptr.to_le_bytes())
        || !write(caller, size_out, &len_i32(bytes.len()).to_le_bytes())
    {
        return Ok(status::INVALID_MEMORY_ACCESS);
    }
    Ok(status::OK)
}

/// `proxy_buffer_type_t` values the spec knows (0 to 8): unknown ones are a bad argument,
/// known ones the host does not have now are not found.
const KNOWN_BUFFERS: std::ops::RangeInclusive<i32> = 0..=8;

/// The header map `id` of the effective context, if the host has it now.
fn header_map(state: &mut VmState, id: i32) -> Option<&mut Option<Pairs>> {
    let stream = state.stream()?;
    match id {
        map::HTTP_REQUEST_HEADERS => Some(&mut stream.request_headers),
        map::HTTP_REQUEST_TRAILERS => Some(&mut stream.request_trailers),
        map::HTTP_RESPONSE_HEADERS => Some(&mut stream.response_headers),
        map::HTTP_RESPONSE_TRAILERS => Some(&mut stream.response_trailers),
        _ => None,
    }
}

/// Notes a write to a header map that is already on the wire.
fn note_late_write(state: &mut VmState, id: i32, what: String) {
    if let Some(stream) = state.stream() {
        let sent = match id {
            map::HTTP_REQUEST_HEADERS => stream.request_headers_sent,
            map::HTTP_RESPONSE_HEADERS => stream.response_headers_sent,
            _ => false,
        };
        if sent {
            stream.late_writes.push(what);
        }
    }
}

/// The imports the host implements: those the filter calls (its `filter/abi.rs`), and the
/// `proxy_set_effective_context` the proxy-wasm SDK's dispatcher calls before
/// `proxy_on_http_call_response` (modules built on the SDK, as the filter was). Shared queues
/// are the process's ([`Shared`]): a VM whose `plugin_root_id` property is the shipper's
/// registers one and workers resolve it (whatever the `vm_id`: one plugin here); nothing
/// calls `proxy_on_queue_ready`, the shipper drains its queue on tick.
pub const IMPLEMENTED: [&str; 23] = [
    "proxy_log",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_http_call",
    "proxy_set_effective_context",
    "proxy_resolve_shared_queue",
    "proxy_register_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_done",
    "random_get",
];

fn define_imports(linker: &mut Linker<VmState>, module: &Module) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| -> i32 {
            if !(0..=5).contains(&level) {
                return status::BAD_ARGUMENT;
            }
            let Some(bytes) = read(&mut c, ptr, len) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            c.data_mut().logs.push(LogLine {
                level,
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, out: i32| -> i32 {
            let now = c.data().clock_ns;
            if write(&mut c, out, &now.to_le_bytes()) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        },
    )?;
    // WASI's, as Envoy's proxy-wasm host implements it for every runtime: fresh bytes (a
    // test host's, not a CSPRNG's), or the configured errno.
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "random_get",
        |mut c: C<'_>, ptr: i32, len: i32| -> i32 {
            c.data_mut().random_calls += 1;
            if let Some(errno) = c.data().options.random_errno {
                return errno;
            }
            let seed = u64::from(c.data().random_calls).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ c.data().clock_ns;
            let bytes: Vec<u8> = (0..len.max(0) as u64)
                .map(|i| (seed.rotate_left((i % 64) as u32) >> 3) as u8 ^ i as u8)
                .collect();
            if write(&mut c, ptr, &bytes) {
                0
            } else {
                21 // EFAULT
            }
        },
    )?;
    linker.func_wrap("env", "proxy_done", |mut c: C<'_>| -> i32 {
        c.data_mut().done_calls += 1;
        status::OK
    })?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: C<'_>, np: i32, nl: i32, out: i32| -> i32 {
            let Some(name) = read(&mut c, np, nl) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let id = {
                let state = c.data();
                let mut shared = state.shared();
                match shared.queues.iter().position(|(n, _)| *n == name) {
                    Some(i) => i + 1,
                    None => {
                        shared.queues.push((name, VecDeque::new()));
                        shared.queues.len()
                    }
                }
            };
            if write(&mut c, out, &(id as u32).to_le_bytes()) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vp: i32, vl: i32, np: i32, nl: i32, out: i32| -> i32 {
            let (Some(_vm_id), Some(name)) = (read(&mut c, vp, vl), read(&mut c, np, nl)) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let found = c
                .data()
                .shared()
                .queues
                .iter()
                .position(|(n, _)| *n == name);
            let Some(i) = found else {
                return status::NOT_FOUND;
            };
            if write(&mut c, out, &((i + 1) as u32).to_le_bytes()) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, id: i32, vp: i32, vl: i32| -> i32 {
            let Some(value) = read(&mut c, vp, vl) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let state = c.data();
            let mut shared = state.shared();
            match u(id).checked_sub(1).and_then(|i| shared.queues.get_mut(i)) {
                Some((_, q)) => {
                    q.push_back(value);
                    status::OK
                }
                None => status::NOT_FOUND,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, ptr_out: i32, size_out: i32| {
            let next = {
                let state = c.data();
                let mut shared = state.shared();
                match u(id).checked_sub(1).and_then(|i| shared.queues.get_mut(i)) {
                    Some((_, q)) => q.pop_front(),
                    None => return Ok(status::NOT_FOUND),
                }
            };
            match next {
                Some(message) => give(&mut c, &message, ptr_out, size_out),
                None => Ok(status::EMPTY),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| -> i32 {
            c.data_mut().tick_period_ms = period as u32;
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, ptr_out: i32, size_out: i32| {
            let s = c.data_mut();
            let bytes: Option<Vec<u8>> = match kind {
                buffer::HTTP_REQUEST_BODY => s.stream().and_then(|st| st.request_body.clone()),
                buffer::HTTP_RESPONSE_BODY => s.stream().and_then(|st| st.response_body.clone()),
                buffer::HTTP_CALL_RESPONSE_BODY => match &s.answer {
                    Some(Answer::Http { body, .. }) => Some(body.clone()),
                    _ => None,
                },
                buffer::PLUGIN_CONFIGURATION if s.callback == "proxy_on_configure" => {
                    Some(s.plugin_configuration.clone())
                }
                buffer::VM_CONFIGURATION if s.callback == "proxy_on_vm_start" => {
                    Some(s.vm_configuration.clone())
                }
                k if KNOWN_BUFFERS.contains(&k) => None,
                _ => return Ok(status::BAD_ARGUMENT),
            };
            let Some(bytes) = bytes else {
                return Ok(status::NOT_FOUND);
            };
            // As proxy-wasm's C++ host: overflow is an error, a long read is cut short.
            let (start, max) = (u64::from(start as u32), u64::from(max as u32));
            if start > bytes.len() as u64 {
                return Ok(status::BAD_ARGUMENT);
            }
            let end = start.saturating_add(max).min(bytes.len() as u64);
            let slice = bytes.get(start as usize..end as usize).unwrap_or_default();
            give(&mut c, slice, ptr_out, size_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| -> i32 {
            let Some(value) = read(&mut c, ptr, len) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let s = c.data_mut();
            if let Some(refused) = s.options.refuse_set_buffer {
                return refused;
            }
            let body = match kind {
                buffer::HTTP_REQUEST_BODY => s.stream().and_then(|st| st.request_body.as_mut()),
                buffer::HTTP_RESPONSE_BODY => s.stream().and_then(|st| st.response_body.as_mut()),
                k if KNOWN_BUFFERS.contains(&k) => None,
                _ => return status::BAD_ARGUMENT,
            };
            let Some(body) = body else {
                return status::NOT_FOUND;
            };
            // Envoy's `copyFrom`: from the start (drain `size`, prepend) or an append;
            // anything in between is refused.
            let (start, size) = (u(start), u(size));
            if start == 0 {
                let drain = size.min(body.len());
                body.splice(..drain, value);
                status::OK
            } else if start >= body.len() {
                body.extend_from_slice(&value);
                status::OK
            } else {
                status::BAD_ARGUMENT
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, id: i32, ptr_out: i32, size_out: i32| {
            let bytes = {
                let s = c.data_mut();
                if id == map::HTTP_CALL_RESPONSE_HEADERS || id == map::HTTP_CALL_RESPONSE_TRAILERS {
                    match &s.answer {
                        Some(Answer::Http {
                            headers, trailers, ..
                        }) => Some(abi::serialize(if id == map::HTTP_CALL_RESPONSE_HEADERS {
                            headers
                        } else {
                            trailers
                        })),
                        Some(Answer::Failed) => Some(Vec::new()),
                        None => None,
                    }
                } else {
                    match header_map(s, id) {
                        Some(Some(pairs)) => Some(abi::serialize(pairs)),
                        Some(None) => Some(Vec::new()),
                        None => None,
                    }
                }
            };
            match bytes {
                Some(b) => give(&mut c, &b, ptr_out, size_out),
                None => Ok(status::BAD_ARGUMENT),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C<'_>, id: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            let (Some(key), Some(value)) = (read(&mut c, kp, kl), read(&mut c, vp, vl)) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let s = c.data_mut();
            let Some(slot) = header_map(s, id) else {
                return status::BAD_ARGUMENT;
            };
            abi::replace(slot.get_or_insert_with(Vec::new), &key, &value);
            let what = format!(
                "set {}: {}",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            );
            note_late_write(s, id, what);
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, id: i32, kp: i32, kl: i32| -> i32 {
            let Some(key) = read(&mut c, kp, kl) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let s = c.data_mut();
            let Some(slot) = header_map(s, id) else {
                return status::BAD_ARGUMENT;
            };
            if let Some(pairs) = slot {
                abi::remove(pairs, &key);
            }
            let what = format!("remove {}", String::from_utf8_lossy(&key));
            note_late_write(s, id, what);
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, pp: i32, pl: i32, ptr_out: i32, size_out: i32| {
            let Some(path) = read(&mut c, pp, pl) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let s = c.data_mut();
            let value = s
                .stream()
                .and_then(|st| st.properties.get(&path).cloned())
                .or_else(|| s.options.properties.get(&path).cloned());
            match value {
                Some(v) => give(&mut c, &v, ptr_out, size_out),
                None => Ok(status::NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, kp: i32, kl: i32, ptr_out: i32, size_out: i32, cas_out: i32| {
            let Some(key) = read(&mut c, kp, kl) else {
                return Ok(status::INVALID_MEMORY_ACCESS);
            };
            let entry = c.data().shared().data.get(&key).cloned();
            let Some((value, cas)) = entry else {
                return Ok(status::NOT_FOUND);
            };
            let s = give(&mut c, &value, ptr_out, size_out)?;
            if s != status::OK {
                return Ok(s);
            }
            Ok(if write(&mut c, cas_out, &cas.to_le_bytes()) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> i32 {
            let (Some(key), Some(value)) = (read(&mut c, kp, kl), read(&mut c, vp, vl)) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let state = c.data();
            let mut shared = state.shared();
            // As Envoy: a token must match the value's current one; an absent key is
            // created whatever the token.
            let cas = cas as u32;
            if let Some((_, current)) = shared.data.get(&key) {
                if cas != 0 && cas != *current {
                    return status::CAS_MISMATCH;
                }
            }
            shared.next_cas = shared.next_cas.wrapping_add(1).max(1);
            let next = shared.next_cas;
            shared.data.insert(key, (value, next));
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: C<'_>, kind: i32| -> i32 {
            let Some(stream) = c.data_mut().stream() else {
                return status::BAD_ARGUMENT;
            };
            match kind {
                abi::stream::HTTP_REQUEST | abi::stream::HTTP_RESPONSE => {
                    stream.reset = true;
                    status::OK
                }
                _ => status::BAD_ARGUMENT,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         code: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32|
         -> i32 {
            let (Some(details), Some(body), Some(headers)) = (
                read(&mut c, dp, dl),
                read(&mut c, bp, bl),
                read(&mut c, hp, hl),
            ) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let Some(headers) = abi::deserialize(&headers) else {
                return status::BAD_ARGUMENT;
            };
            let Some(stream) = c.data_mut().stream() else {
                return status::BAD_ARGUMENT;
            };
            stream.local_reply = Some(LocalReply {
                status: code as u32,
                details,
                body,
                headers,
            });
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, np: i32, nl: i32, id_out: i32| -> i32 {
            if !matches!(kind, metric::COUNTER | metric::GAUGE | metric::HISTOGRAM) {
                return status::BAD_ARGUMENT;
            }
            let Some(name) = read(&mut c, np, nl) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            let id = {
                let state = c.data();
                let mut shared = state.shared();
                match shared.metric_names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        shared.metric_names.push(name.clone());
                        shared.metrics.insert(name, (kind, 0));
                        shared.metric_names.len() - 1
                    }
                }
            };
            if write(&mut c, id_out, &(id as u32).to_le_bytes()) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: C<'_>, id: i32, delta: i64| -> i32 {
            let state = c.data();
            let mut shared = state.shared();
            let Some(name) = shared.metric_names.get(u(id)).cloned() else {
                return status::NOT_FOUND;
            };
            let Some((kind, value)) = shared.metrics.get_mut(&name) else {
                return status::NOT_FOUND;
            };
            // Envoy: a counter only goes up.
            if *kind == metric::COUNTER && delta < 0 {
                return status::BAD_ARGUMENT;
            }
            *value = value.saturating_add(delta);
            status::OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         tp: i32,
         tl: i32,
         timeout: i32,
         token_out: i32|
         -> i32 {
            let (Some(cluster), Some(headers), Some(body), Some(trailers)) = (
                read(&mut c, up, ul),
                read(&mut c, hp, hl),
                read(&mut c, bp, bl),
                read(&mut c, tp, tl),
            ) else {
                return status::INVALID_MEMORY_ACCESS;
            };
            let (Some(headers), Some(trailers)) =
                (abi::deserialize(&headers), abi::deserialize(&trailers))
            else {
                return status::BAD_ARGUMENT;
            };
            let cluster = String::from_utf8_lossy(&cluster).into_owned();
            let s = c.data_mut();
            let known = s.options.clusters.is_empty() || s.options.clusters.contains(&cluster);
            // Envoy needs these three to send anything.
            let complete = [":method", ":path", ":authority"]
                .iter()
                .all(|h| abi::get(&headers, h).is_some_and(|v| !v.is_empty()));
            if !known || !complete {
                return status::BAD_ARGUMENT;
            }
            let token = s.next_token;
            s.next_token += 1;
            s.calls.push(Call {
                token,
                cluster,
                headers,
                body,
                trailers,
                timeout_ms: timeout as u32,
                answer: None,
            });
            if write(&mut c, token_out, &token.to_le_bytes()) {
                status::OK
            } else {
                status::INVALID_MEMORY_ACCESS
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, id: i32| -> i32 {
            let s = c.data_mut();
            let id = id as u32;
            if id == s.root || s.streams.contains_key(&id) {
                s.effective = id;
                status::OK
            } else {
                status::BAD_ARGUMENT
            }
        },
    )?;
    // Everything else the module imports: a status, and a note for the test to fail on.
    for import in module.imports() {
        let (m, name) = (import.module().to_string(), import.name().to_string());
        let wasi = m == "wasi_snapshot_preview1" && name == "random_get";
        if (m == "env" || wasi) && IMPLEMENTED.contains(&name.as_str()) {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else {
            wasmtime::bail!("import {m}.{name} is not a function");
        };
        let returns_status =
            ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
        if !returns_status {
            wasmtime::bail!("import {m}.{name} does not return a status: {ty:?}");
        }
        let label = format!("{m}.{name}");
        linker.func_new(&m, &name, ty, move |mut c, _params, results| {
            c.data_mut().unsupported.push(label.clone());
            if let Some(r) = results.first_mut() {
                *r = Val::I32(status::UNIMPLEMENTED);
            }
            Ok(())
        })?;
    }
    Ok(())
}
