//! Where a minidump keeps what rules may select: thread stacks (`stack_memory`), other
//! captured memory (`heap_memory`), module paths (`code_file`, UTF-16LE; `debug_file`,
//! the CodeView record's UTF-8 PDB name) and, for `coverage = "all"`, the Linux streams
//! Breakpad and Crashpad write (`environ`, `cmdline`, `status`, `maps`, `lsb_release`).
//! Read with rust-minidump's `minidump` crate; nothing is changed here.

use std::ops::Range;

use minidump::{
    Minidump, MinidumpMemory64List, MinidumpMemoryList, MinidumpModuleList, MinidumpThreadList,
};

/// The byte ranges of one minidump's parts, each inside the dump.
#[derive(Debug, Default)]
pub struct Layout {
    /// Thread stacks.
    pub stacks: Vec<Range<usize>>,
    /// Captured memory that is not a thread stack.
    pub heaps: Vec<Range<usize>>,
    /// Module file names: the UTF-16LE characters of each `MINIDUMP_STRING`.
    pub code_files: Vec<Range<usize>>,
    /// Debug file names of PDB CodeView records (UTF-8, up to the NUL).
    pub debug_files: Vec<Range<usize>>,
    /// Linux text streams, by the name rules give them.
    pub streams: Vec<(&'static str, Range<usize>)>,
}

/// The Linux streams (Breakpad's `MD_LINUX_*` numbers) that hold text, and their names.
const LINUX_TEXT_STREAMS: [(u32, &str); 5] = [
    (0x4767_0004, "status"),
    (0x4767_0005, "lsb_release"),
    (0x4767_0006, "cmdline"),
    (0x4767_0007, "environ"),
    (0x4767_0009, "maps"),
];

/// CodeView signatures: PDB 7.0 (`RSDS`) and PDB 2.0 (`NB10`), and where their file
/// name starts.
const CV_PDB70: u32 = 0x5344_5352;
const CV_PDB20: u32 = 0x3031_424e;

/// The parts of the minidump `data`; `None` when it does not parse as one (then the
/// caller scrubs it as a whole binary). A stream that is missing or broken just has no
/// parts.
pub fn layout(data: &[u8]) -> Option<Layout> {
    let dump = Minidump::read(data).ok()?;
    let within = |range: Range<usize>| (range.end <= data.len()).then_some(range);
    let slice_range = |bytes: &[u8]| {
        let start = (bytes.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        within(start..start.checked_add(bytes.len())?)
    };
    let location = |rva: u32, size: u32| {
        let start = usize::try_from(rva).ok()?;
        within(start..start.checked_add(usize::try_from(size).ok()?)?)
    };
    let mut layout = Layout::default();
    if let Ok(threads) = dump.get_stream::<MinidumpThreadList<'_>>() {
        for thread in &threads.threads {
            let stack = thread.raw.stack.memory;
            if let Some(range) = location(stack.rva, stack.data_size) {
                layout.stacks.push(range);
            }
        }
    }
    if let Ok(memory) = dump.get_stream::<MinidumpMemoryList<'_>>() {
        for region in memory.iter() {
            if let Some(range) = slice_range(region.bytes) {
                if !layout.stacks.contains(&range) {
                    layout.heaps.push(range);
                }
            }
        }
    }
    if let Ok(memory) = dump.get_stream::<MinidumpMemory64List<'_>>() {
        for region in memory.iter() {
            if let Some(range) = slice_range(region.bytes) {
                if !layout.stacks.contains(&range) {
                    layout.heaps.push(range);
                }
            }
        }
    }
    if let Ok(modules) = dump.get_stream::<MinidumpModuleList>() {
        for module in modules.iter() {
            if let Some(range) = minidump_string(data, module.raw.module_name_rva) {
                layout.code_files.push(range);
            }
            let cv = module.raw.cv_record;
            if let Some(range) = location(cv.rva, cv.data_size) {
                if let Some(name) = pdb_name(data, range) {
                    layout.debug_files.push(name);
                }
            }
        }
    }
    for entry in dump.all_streams() {
        if let Some((_, name)) = LINUX_TEXT_STREAMS
            .iter()
            .find(|(ty, _)| *ty == entry.stream_type)
        {
            if let Some(range) = location(entry.location.rva, entry.location.data_size) {
                layout.streams.push((name, range));
            }
        }
    }
    Some(layout)
}

/// The characters of the `MINIDUMP_STRING` at `rva`: a `u32` byte length, then UTF-16LE.
fn minidump_string(data: &[u8], rva: u32) -> Option<Range<usize>> {
    let start = usize::try_from(rva).ok()?;
    let length = data.get(start..start.checked_add(4)?)?;
    let length = usize::try_from(u32::from_le_bytes(length.try_into().ok()?)).ok()?;
    let chars = start + 4..(start + 4).checked_add(length & !1)?;
    (chars.end <= data.len()).then_some(chars)
}

/// The file name of a PDB CodeView record in `record`, up to its NUL.
fn pdb_name(data: &[u8], record: Range<usize>) -> Option<Range<usize>> {
    let bytes = &data[record.clone()];
    let signature = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    let name_at = match signature {
        CV_PDB70 => 24,
        CV_PDB20 => 16,
        _ => return None,
    };
    let name = bytes.get(name_at..)?;
    let length = memchr::memchr(0, name).unwrap_or(name.len());
    let start = record.start + name_at;
    Some(start..start + length)
}

/// The directory part of a path held in `bytes` (UTF-8, or UTF-16LE when `utf16`): up
/// to and including its last `/` or `\`, so that the file's base name is kept.
pub fn directory_part(bytes: &[u8], utf16: bool) -> Range<usize> {
    let separator = |unit: u16| unit == u16::from(b'/') || unit == u16::from(b'\\');
    let end = if utf16 {
        bytes
            .chunks_exact(2)
            .rposition(|pair| separator(u16::from_le_bytes([pair[0], pair[1]])))
            .map_or(0, |unit| unit * 2 + 2)
    } else {
        bytes
            .iter()
            .rposition(|&b| separator(u16::from(b)))
            .map_or(0, |i| i + 1)
    };
    0..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_part_keeps_the_base_name() {
        assert_eq!(directory_part(b"/home/jane/app/crashy", false), 0..15);
        assert_eq!(directory_part(b"crashy", false), 0..0);
        let wide: Vec<u8> = "C:\\Users\\jane\\a.dll"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(directory_part(&wide, true), 0..28);
    }

    #[test]
    fn not_a_minidump_has_no_layout() {
        assert!(layout(b"MDMP but nothing else").is_none());
        assert!(layout(b"").is_none());
    }
}
