//! IPMI-over-LAN client sessions (RMCP+ lanplus with cipher suites 1/2/3/17, Kg, privilege levels; IPMI 1.5) on top of ipmi-rs' public types.
