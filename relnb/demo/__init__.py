"""The `relnb demo` target system: docflow (API + BullMQ worker) with its embedded stack.

Import `DemoStack` from `relnb.demo.stack`; nothing heavy is imported here.
"""
